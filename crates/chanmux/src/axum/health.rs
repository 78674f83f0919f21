//! Health endpoints for load balancers and orchestrators.

use axum::Router;
use axum::extract::Request;
use axum::routing::get;
use http::StatusCode;

use crate::Shutdown;
use crate::layer::SharedLayer;

/// `GET /healthz` and `GET /readyz`, to merge into an app served by
/// [`serve`](super::serve).
///
/// - `/healthz` answers 200 `ok` while the process serves requests at all
///   (a liveness probe).
/// - `/readyz` answers 200 `ready` when new WebSockets are welcome, and 503
///   with the reason while the server drains (its [`Shutdown`] was
///   triggered) or while `layer`'s backend is unreachable (see
///   [`ChannelLayer::is_up`](crate::layer::ChannelLayer::is_up)): a
///   readiness probe then stops sending clients here.
///
/// ```
/// use axum::Router;
/// use chanmux::layer::{InMemoryLayer, SharedLayer};
///
/// let layer: SharedLayer = std::sync::Arc::new(InMemoryLayer::new());
/// let app: Router = Router::new().merge(chanmux::axum::health(Some(layer)));
/// ```
pub fn health<S>(layer: Option<SharedLayer>) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move |request: Request| {
                let layer = layer.clone();
                async move {
                    let draining = request
                        .extensions()
                        .get::<Shutdown>()
                        .is_some_and(Shutdown::is_triggered);
                    if draining {
                        (StatusCode::SERVICE_UNAVAILABLE, "draining")
                    } else if layer.is_some_and(|layer| !layer.is_up()) {
                        (StatusCode::SERVICE_UNAVAILABLE, "channel layer unreachable")
                    } else {
                        (StatusCode::OK, "ready")
                    }
                }
            }),
        )
}
