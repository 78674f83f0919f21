//! The demo server: the seed's four streams at `/ws/` and a page at `/`.
//!
//! `main.rs` and the conformance example serve [`demo_router`] (or
//! [`conformance_router`]) with [`chanmux::axum::serve`], as tests do with a
//! listener on port 0 and a shutdown future they control.
#![cfg_attr(not(test), warn(clippy::print_stdout))]

pub mod consumers;
pub mod metrics;
pub mod stats;

use std::sync::Arc;

use axum::Router;
use axum::response::Html;
use chanmux::axum::websocket_with_config;
use chanmux::layer::SharedLayer;
use chanmux::{ConnectionConfig, Demultiplexer};

use consumers::{
    AltEcho, Chat, CloseAfterFirst, CloseWithCode, Echo, NeverAccept, RaiseInConnect, Room, Ticker,
};

/// Where the demo's groups live.
#[derive(Debug, Clone, Copy)]
pub enum Groups<'a> {
    /// In this process only.
    InMemory,
    /// In the Redis at this URL, shared by every process using it.
    Redis(&'a str),
    /// In the Redis Cluster these seed nodes belong to (sharded pub/sub).
    RedisCluster(&'a [String]),
}

/// The demo's channel layer for `groups` (Redis or a Redis Cluster failing
/// at once if it cannot be reached).
///
/// # Errors
///
/// When Redis cannot be reached.
pub async fn layer(groups: Groups<'_>) -> Result<SharedLayer, chanmux_redis::ConnectError> {
    Ok(match groups {
        Groups::InMemory => Arc::new(chanmux::layer::InMemoryLayer::new()),
        Groups::Redis(url) => {
            let layer = chanmux_redis::RedisLayer::connect(url).await?;
            tracing::info!(url, "groups go through Redis");
            Arc::new(layer)
        }
        Groups::RedisCluster(seeds) => {
            let seeds: Vec<&str> = seeds.iter().map(String::as_str).collect();
            let layer = chanmux_redis::RedisLayer::connect_cluster(&seeds).await?;
            tracing::info!(seeds = seeds.join(","), "groups go through a Redis Cluster");
            Arc::new(layer)
        }
    })
}

/// The demo's demultiplexer: the seed's `echostream`, `altechostream`,
/// `closeafterfirst`, `neveraccept`, and `chat` over `layer`, started at
/// connect; and the streams a client subscribes to, `room:{id}` and
/// `ticker:{symbol}` (see [`consumers`]).
pub fn demo_demultiplexer(layer: SharedLayer) -> Demultiplexer {
    Demultiplexer::builder()
        .stream("echostream", || Echo)
        .stream("altechostream", || AltEcho)
        .stream("closeafterfirst", || CloseAfterFirst)
        .stream("neveraccept", || NeverAccept)
        .stream("chat", || Chat)
        .pattern("room:{id}", Room::default)
        .pattern("ticker:{symbol}", || Ticker)
        .channel_layer(layer)
        .build()
}

/// Only the streams of channelsmultiplexer's test app: `echostream`,
/// `altechostream`, `closeafterfirst` and `neveraccept` (three accept), as
/// the Python reference in `bench/reference/` serves them, so that
/// benchmarks compare like with like.
pub fn reference_demultiplexer(layer: SharedLayer) -> Demultiplexer {
    Demultiplexer::builder()
        .stream("echostream", || Echo)
        .stream("altechostream", || AltEcho)
        .stream("closeafterfirst", || CloseAfterFirst)
        .stream("neveraccept", || NeverAccept)
        .channel_layer(layer)
        .build()
}

/// The TypeScript client (`clients/js`), built: the page imports it. A
/// copy is kept here, made by `npm run build:demo` there, and a test of the
/// client checks the two are the same, so `cargo run` needs no npm.
async fn client_script() -> impl axum::response::IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/javascript; charset=utf-8",
        )],
        include_str!("../static/chanmux-client.js"),
    )
}

/// The demo: the page at `/` (and the client it uses at `/chanmux-client.js`), the demultiplexer at `/ws/`, the reference
/// streams alone at `/ws/reference/`, and `/healthz` and `/readyz` (see
/// [`chanmux::axum::health`]).
pub fn demo_router(config: ConnectionConfig, layer: SharedLayer) -> Router {
    Router::new()
        .route(
            "/",
            axum::routing::get(|| async { Html(include_str!("../static/index.html")) }),
        )
        .route("/chanmux-client.js", axum::routing::get(client_script))
        .route(
            "/ws/",
            websocket_with_config(demo_demultiplexer(layer.clone()), config.clone()),
        )
        .route(
            "/ws/reference/",
            websocket_with_config(reference_demultiplexer(layer.clone()), config),
        )
        .merge(chanmux::axum::health(Some(layer)))
}

/// The applications of channelsmultiplexer's test suite, for outside
/// conformance suites (`/ws/` also has `chat`).
pub fn conformance_router(config: ConnectionConfig, layer: SharedLayer) -> Router {
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
    demo_router(config.clone(), layer)
        .route("/ws/raise/", websocket_with_config(raise, config.clone()))
        .route("/ws/single/", websocket_with_config(single, config.clone()))
        .route("/ws/lastclose/", websocket_with_config(last_close, config))
}
