//! Groups: the in-memory layer's conformance, consumers joining groups,
//! broadcasts straight to clients (fan-out), and cleanup.

#[path = "../support/mod.rs"]
mod support;

mod consumers;
mod fanout;

use std::sync::Arc;

use chanmux::layer::{InMemoryLayer, SharedLayer};
use chanmux::testing::layer_conformance;

#[tokio::test]
async fn the_in_memory_layer_passes_the_conformance_suite() {
    layer_conformance::run_all(|| async {
        let layer = InMemoryLayer::new();
        let a: SharedLayer = Arc::new(layer.clone());
        let b: SharedLayer = Arc::new(layer);
        (a, b)
    })
    .await;
}
