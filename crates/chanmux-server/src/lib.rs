//! The demo server: the seed's four streams at `/ws/` and a page at `/`.
//!
//! `main.rs` and the conformance example are thin wrappers over [`run`], which
//! tests call too, with a listener on port 0 and a shutdown future they control.
#![cfg_attr(not(test), warn(clippy::print_stdout))]

pub mod consumers;

use std::future::Future;
use std::time::Duration;

use axum::Router;
use axum::response::Html;
use chanmux::axum::{ConnectionAddrs, websocket_with_config};
use chanmux::{ConnectionConfig, Demultiplexer, Shutdown};
use tokio::net::TcpListener;

use consumers::{AltEcho, CloseAfterFirst, CloseWithCode, Echo, NeverAccept, RaiseInConnect};

/// How long shutdown waits for WebSockets to finish their closing handshake.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The demo's demultiplexer: `echostream`, `altechostream`, `closeafterfirst`, `neveraccept`.
pub fn demo_demultiplexer() -> Demultiplexer {
    Demultiplexer::builder()
        .stream("echostream", || Echo)
        .stream("altechostream", || AltEcho)
        .stream("closeafterfirst", || CloseAfterFirst)
        .stream("neveraccept", || NeverAccept)
        .build()
}

/// The demo: the page at `/` and the demultiplexer at `/ws/`.
pub fn demo_router(config: ConnectionConfig) -> Router {
    Router::new()
        .route(
            "/",
            axum::routing::get(|| async { Html(include_str!("../static/index.html")) }),
        )
        .route("/ws/", websocket_with_config(demo_demultiplexer(), config))
}

/// The applications of channelsmultiplexer's test suite, for outside conformance suites.
pub fn conformance_router(config: ConnectionConfig) -> Router {
    let raise = Demultiplexer::builder()
        .stream("raiseinaccept", || RaiseInConnect)
        .build();
    let single = Demultiplexer::builder()
        .stream("test", || NeverAccept)
        .build();
    let last_close = Demultiplexer::builder()
        .stream("closeafterfirst", || CloseAfterFirst)
        .stream("closewithcode", || CloseWithCode)
        .build();
    demo_router(config.clone())
        .route("/ws/raise/", websocket_with_config(raise, config.clone()))
        .route("/ws/single/", websocket_with_config(single, config.clone()))
        .route("/ws/lastclose/", websocket_with_config(last_close, config))
}

/// Serves `app` on `listener` until `signal` resolves; then closes every
/// WebSocket with 1001 and waits (up to 10 s) for them to finish.
///
/// `shutdown` must be the switch given to the routes' [`ConnectionConfig`].
///
/// # Errors
///
/// When the listener fails.
pub async fn run(
    listener: TcpListener,
    app: Router,
    shutdown: Shutdown,
    signal: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let switch = shutdown.clone();
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<ConnectionAddrs>(),
    )
    .with_graceful_shutdown(async move {
        signal.await;
        tracing::info!("shutting down: closing WebSockets with 1001");
        switch.trigger();
    })
    .await?;
    if tokio::time::timeout(DRAIN_TIMEOUT, shutdown.drained())
        .await
        .is_err()
    {
        tracing::warn!(
            live = shutdown.live_connections(),
            "WebSockets still open after the drain timeout"
        );
    }
    Ok(())
}
