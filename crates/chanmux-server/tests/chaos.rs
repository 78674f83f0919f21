//! `chanmux-load chaos` for a few seconds against the demo server in
//! process, with its stats endpoint: every scenario runs, nothing
//! unexpected happens, and nothing is left behind.

use std::sync::Arc;
use std::time::Duration;

use chanmux::axum::ServeConfig;
use chanmux::layer::{InMemoryLayer, SharedLayer};
use chanmux::{ConnectionConfig, Shutdown};
use chanmux_bench::chaos::{ChaosConfig, Scenario};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_chaos_run_passes_every_check() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = Shutdown::new();
    // A short slow-client timeout, so that clients that stop reading for
    // the (short) holds of this run meet it.
    let config = ConnectionConfig::default()
        .with_slow_client_timeout(Duration::from_secs(1))
        .with_shutdown(shutdown.clone());
    let layer: SharedLayer = Arc::new(InMemoryLayer::new());
    let app = chanmux_server::demo_router(config, layer.clone())
        .merge(chanmux_server::stats::stats_router(layer, shutdown.clone()));
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(chanmux::axum::serve(
        listener,
        app,
        ServeConfig::default().with_shutdown(shutdown),
        async {
            let _ = stopped.await;
        },
    ));

    let chaos = ChaosConfig {
        workers: 18,
        duration: Duration::from_secs(3),
        settle: Duration::from_secs(1),
        max_hold: Duration::from_secs(2),
        stats_url: Some(format!("http://{addr}/stats")),
        ..ChaosConfig::new(format!("ws://{addr}/ws/"), 20261130)
    };
    let summary = tokio::time::timeout(Duration::from_secs(120), chanmux_bench::chaos::run(&chaos))
        .await
        .expect("the run ends by itself")
        .expect("the run starts");
    eprint!("{}", summary.render());
    assert!(summary.is_clean(), "{:?}", summary.failures);
    for scenario in Scenario::ALL {
        let tally = &summary.scenarios[scenario.name()];
        assert!(
            tally.started >= 1 && tally.completed >= 1,
            "{} did not run to completion: {tally:?}",
            scenario.name()
        );
    }
    let stats = summary.stats.expect("the stats were read");
    assert_eq!(stats["connections"], 0, "{stats}");
    assert_eq!(stats["memberships"], 0, "{stats}");
    assert!(summary.echo_after_ms.is_some());

    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(30), server)
        .await
        .expect("the server stops")
        .unwrap()
        .unwrap();
}
