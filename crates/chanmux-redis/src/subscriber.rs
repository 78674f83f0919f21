//! The subscriber task: one Redis pub/sub connection per layer instance,
//! kept up for as long as the layer lives.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::StreamExt;
use redis::RedisResult;
use redis::aio::{PubSubSink, PubSubStream};
use tokio::sync::{mpsc, oneshot};

use crate::layer::Shared;

/// First pause before reconnecting; it doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Requests from the layer to the subscriber task.
pub(crate) enum Command {
    /// Subscribe to a topic and say when done.
    Subscribe(String, oneshot::Sender<RedisResult<()>>),
    /// Unsubscribe from a topic, unless it is wanted again by then.
    Unsubscribe(String),
}

/// Serves the subscription connection; on loss, reconnects with backoff and
/// subscribes again to every topic the layer needs. Ends when the layer is
/// dropped (its command sender closes).
pub(crate) async fn run(
    client: redis::Client,
    shared: Arc<Shared>,
    mut sink: PubSubSink,
    mut stream: PubSubStream,
    mut commands: mpsc::UnboundedReceiver<Command>,
) {
    loop {
        // The connection is up: serve commands and messages until it drops.
        loop {
            tokio::select! {
                command = commands.recv() => match command {
                    None => return,
                    Some(Command::Subscribe(topic, ack)) => {
                        let result = sink.subscribe(&topic).await;
                        let failed = result.is_err();
                        let _ = ack.send(result);
                        if failed {
                            break;
                        }
                    }
                    Some(Command::Unsubscribe(topic)) => {
                        if !shared.wants(&topic) && sink.unsubscribe(&topic).await.is_err() {
                            break;
                        }
                    }
                },
                message = stream.next() => match message {
                    Some(message) => match std::str::from_utf8(message.get_payload_bytes()) {
                        Ok(payload) => shared.dispatch(message.get_channel_name(), payload),
                        Err(_) => tracing::warn!("non-UTF-8 message from Redis; dropped"),
                    },
                    None => break,
                },
            }
        }
        shared.connected.store(false, Ordering::Release);
        tracing::warn!("lost the Redis subscription connection; reconnecting");
        let Some((new_sink, new_stream)) = reconnect(&client, &shared, &mut commands).await else {
            return;
        };
        (sink, stream) = (new_sink, new_stream);
        shared.connected.store(true, Ordering::Release);
        tracing::info!("Redis subscription connection restored");
    }
}

/// Retries until connected and subscribed again, answering subscribe
/// requests with an error meanwhile. `None` when the layer was dropped.
async fn reconnect(
    client: &redis::Client,
    shared: &Shared,
    commands: &mut mpsc::UnboundedReceiver<Command>,
) -> Option<(PubSubSink, PubSubStream)> {
    let mut backoff = MIN_BACKOFF;
    loop {
        let pause = tokio::time::sleep(backoff);
        tokio::pin!(pause);
        loop {
            tokio::select! {
                () = &mut pause => break,
                command = commands.recv() => match command {
                    None => return None,
                    // The membership is recorded; the topic is subscribed on reconnect.
                    Some(Command::Subscribe(_, ack)) => {
                        let _ = ack.send(Err(unavailable()));
                    }
                    Some(Command::Unsubscribe(_)) => {}
                },
            }
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
        let wait = shared.config.operation_timeout;
        let Ok(Ok(pubsub)) = tokio::time::timeout(wait, client.get_async_pubsub()).await else {
            continue;
        };
        let (mut sink, stream) = pubsub.split();
        // Topics are read after connecting, so memberships made during the
        // outage are included.
        if let Ok(Ok(())) = tokio::time::timeout(wait, sink.subscribe(shared.topics())).await {
            return Some((sink, stream));
        }
    }
}

fn unavailable() -> redis::RedisError {
    redis::RedisError::from(std::io::Error::new(
        std::io::ErrorKind::NotConnected,
        "Redis is unreachable; reconnecting",
    ))
}
