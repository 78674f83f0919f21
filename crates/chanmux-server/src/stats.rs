//! `GET /stats`: what the server holds right now, as JSON, for leak checks
//! (`chanmux-load chaos --stats-url`) and monitoring.
//!
//! ```json
//! {"connections": 0, "channels": 0, "groups": 0, "memberships": 0, "dropped": 0}
//! ```
//!
//! `connections` counts the WebSockets still running (the checker's own
//! included, if it still has one open); the rest is [`LayerStats`] of the
//! layer the consumers use. Served only when the binary is given `--stats`.
//!
//! [`LayerStats`]: chanmux::layer::LayerStats

use axum::Router;
use axum::http::header::CONTENT_TYPE;
use axum::routing::get;
use chanmux::Shutdown;
use chanmux::layer::SharedLayer;

/// A router serving `GET /stats` from `layer` and `shutdown` (which must be
/// the switch the WebSocket routes were given, so it counts their connections).
pub fn stats_router(layer: SharedLayer, shutdown: Shutdown) -> Router {
    Router::new().route(
        "/stats",
        get(move || {
            let layer = layer.clone();
            let shutdown = shutdown.clone();
            async move {
                let stats = layer.stats();
                let body = serde_json::json!({
                    "connections": shutdown.live_connections(),
                    "channels": stats.channels,
                    "groups": stats.groups,
                    "memberships": stats.memberships,
                    "dropped": stats.dropped,
                });
                ([(CONTENT_TYPE, "application/json")], body.to_string())
            }
        }),
    )
}
