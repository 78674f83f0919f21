//! `GET /metrics`: what the library records (see [`chanmux::metrics`]), in
//! Prometheus' text format, on a listener of its own (`--metrics-addr`) so
//! it can stay off the public port.

use std::time::Duration;

use axum::Router;
use axum::http::header::CONTENT_TYPE;
use axum::routing::get;
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};

/// Buckets of `chanmux_handler_seconds`: from 10 µs (an echo) to 10 s (a
/// handler waiting on something slow).
const HANDLER_BUCKETS: [f64; 13] = [
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.01, 0.05, 0.25,
    1.0, 10.0,
];

/// How often histogram samples are folded into their buckets, so memory
/// stays bounded between scrapes.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Installs the Prometheus recorder as the process's metrics recorder and
/// starts its upkeep task. Call before serving (the library looks its
/// handles up at the first connection) and within a Tokio runtime.
///
/// # Errors
///
/// When a recorder is already installed.
pub fn install() -> Result<PrometheusHandle, BuildError> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(chanmux::metrics::HANDLER_SECONDS.to_owned()),
            &HANDLER_BUCKETS,
        )?
        .install_recorder()?;
    chanmux::metrics::describe();
    let upkeep = handle.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(UPKEEP_EVERY).await;
            upkeep.run_upkeep();
        }
    });
    Ok(handle)
}

/// A router serving `GET /metrics` from `handle`.
pub fn metrics_router(handle: PrometheusHandle) -> Router {
    Router::new().route(
        "/metrics",
        get(move || {
            let page = handle.render();
            std::future::ready(([(CONTENT_TYPE, "text/plain; version=0.0.4")], page))
        }),
    )
}
