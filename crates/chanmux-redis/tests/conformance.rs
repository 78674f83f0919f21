//! The channel layer conformance suite against a real redis-server, with two
//! layer instances standing for two processes.

use chanmux_redis::testing as support;

use std::sync::Arc;

use chanmux::layer::SharedLayer;
use chanmux::testing::layer_conformance;
use chanmux_redis::RedisLayer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_layer_passes_the_conformance_suite() {
    let server = support::RedisServer::start().await;
    let url = server.url();
    layer_conformance::run_all(|| {
        let url = url.clone();
        async move {
            let a: SharedLayer = Arc::new(RedisLayer::connect(&url).await.unwrap());
            let b: SharedLayer = Arc::new(RedisLayer::connect(&url).await.unwrap());
            (a, b)
        }
    })
    .await;
}
