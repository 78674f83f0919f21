//! Per-stream authorization end to end, as README's "Streams on demand"
//! shows it: axum middleware authenticates the upgrade request (bearer token
//! or session cookie) and puts the user in the request's extensions; each
//! `inbox:{user}` stream reads it from the scope and accepts or refuses.

use axum::Router;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use chanmux::layer::InMemoryLayer;
use chanmux::{BoxError, Consumer, Context, Demultiplexer};
use futures_util::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use super::{Client, WAIT, next_json, serve, status};

#[derive(Clone)]
struct User {
    name: String,
    admin: bool,
}

async fn authenticate(mut request: Request, next: Next) -> Result<Response, StatusCode> {
    let headers = request.headers();
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let cookie = headers
        .get(header::COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split("; ").find_map(|c| c.strip_prefix("session=")));
    let user = match bearer.or(cookie) {
        Some("ann-token") => User {
            name: "ann".into(),
            admin: false,
        },
        Some("root-token") => User {
            name: "root".into(),
            admin: true,
        },
        _ => return Err(StatusCode::UNAUTHORIZED),
    };
    request.extensions_mut().insert(user);
    Ok(next.run(request).await)
}

struct Inbox;

impl Consumer for Inbox {
    async fn connect(&mut self, ctx: &Context) -> Result<(), BoxError> {
        let owner = ctx.capture("user").unwrap_or_default();
        match ctx.scope().extensions.get::<User>() {
            Some(user) if user.admin || user.name == owner => {
                ctx.group_add(&format!("inbox.{owner}")).await?;
                ctx.accept().await?;
            }
            _ => ctx.refuse_with(format!("you may not read {owner}'s inbox")),
        }
        Ok(())
    }
}

/// Connects with `header: value` as the credentials.
async fn connect_as(
    addr: std::net::SocketAddr,
    credentials: Option<(&str, &str)>,
) -> Result<Client, u16> {
    let mut request = format!("ws://{addr}/ws/").into_client_request().unwrap();
    if let Some((name, value)) = credentials {
        request.headers_mut().insert(
            name.parse::<header::HeaderName>().unwrap(),
            value.parse().unwrap(),
        );
    }
    match tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(request))
        .await
        .expect("handshake answered in time")
    {
        Ok((client, _)) => Ok(client),
        Err(e) => Err(status(e)),
    }
}

async fn subscribe(client: &mut Client, stream: &str, reference: u32) -> serde_json::Value {
    let frame = json!({"subscribe": stream, "ref": reference}).to_string();
    client.send(Message::text(frame)).await.unwrap();
    next_json(client).await
}

#[tokio::test]
async fn middleware_authenticates_and_each_stream_authorizes_its_subscriptions() {
    let demux = Demultiplexer::builder()
        .pattern("inbox:{user}", || Inbox)
        .channel_layer(InMemoryLayer::new())
        .build();
    let app = Router::new()
        .route("/ws/", chanmux::axum::websocket(demux.clone()))
        .layer(middleware::from_fn(authenticate));
    let addr = serve(app).await;

    assert_eq!(connect_as(addr, None).await.err(), Some(401));
    let wrong = connect_as(addr, Some(("authorization", "Bearer nope"))).await;
    assert_eq!(wrong.err(), Some(401));

    let mut ann = connect_as(addr, Some(("authorization", "Bearer ann-token")))
        .await
        .unwrap();
    assert_eq!(
        subscribe(&mut ann, "inbox:ann", 1).await,
        json!({"subscribed": "inbox:ann", "ref": 1})
    );
    assert_eq!(
        subscribe(&mut ann, "inbox:bob", 2).await,
        json!({"error": {"code": "subscription_refused", "message": "you may not read bob's inbox"}, "stream": "inbox:bob", "ref": 2})
    );
    // A page's cookie works the same way; an admin may read any inbox.
    let mut root = connect_as(addr, Some(("cookie", "theme=dark; session=root-token")))
        .await
        .unwrap();
    assert_eq!(
        subscribe(&mut root, "inbox:ann", 3).await,
        json!({"subscribed": "inbox:ann", "ref": 3})
    );
    // What is sent to ann's inbox reaches both subscribers.
    demux
        .group_send("inbox.ann", "inbox:ann", &json!({"new": 1}))
        .await
        .unwrap();
    for client in [&mut ann, &mut root] {
        assert_eq!(
            next_json(client).await,
            json!({"stream": "inbox:ann", "payload": {"new": 1}})
        );
    }
}
