//! The subscriber task: one Redis pub/sub connection per layer instance,
//! kept up for as long as the layer lives.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::{PubSubSink, PubSubStream};
use redis::{RedisError, RedisResult};
use tokio::sync::{mpsc, oneshot};
use tokio::time::timeout;

use crate::layer::Shared;

/// First pause before reconnecting (on a cluster: syncing again); it
/// doubles up to [`MAX_BACKOFF`].
pub(crate) const MIN_BACKOFF: Duration = Duration::from_millis(50);
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// How often an idle subscription connection is checked with a PING, so a
/// connection that died silently (no FIN, no RST) is noticed (on a
/// cluster, the topology is read again too, for a slot that moved without
/// telling).
pub(crate) const KEEPALIVE: Duration = Duration::from_secs(10);

/// Requests from the layer to the subscriber task.
pub(crate) enum Command {
    /// Subscribe to a topic and say when done.
    Subscribe(String, oneshot::Sender<RedisResult<()>>),
    /// Unsubscribe from a topic, unless it is wanted again by then.
    Unsubscribe(String),
}

type Ack = oneshot::Sender<RedisResult<()>>;

/// A subscribe request waiting for the connection to come back.
pub(crate) type Held = (String, Ack);

/// Answers the held requests that `verdict` has an answer for and keeps the
/// others; requests whose caller stopped waiting (timed out) are dropped.
pub(crate) fn answer_held(
    held: &mut Vec<Held>,
    mut verdict: impl FnMut(&str) -> Option<RedisResult<()>>,
) {
    let mut kept = Vec::new();
    for (topic, ack) in held.drain(..) {
        if ack.is_closed() {
            continue;
        }
        match verdict(&topic) {
            Some(outcome) => {
                let _ = ack.send(outcome);
            }
            None => kept.push((topic, ack)),
        }
    }
    *held = kept;
}

/// Why serving a connection stopped.
enum Stop {
    /// The layer was dropped.
    LayerGone,
    /// The connection is lost (or stopped answering).
    Lost,
}

/// Serves the subscription connection; on loss, reconnects with backoff and
/// subscribes again to every topic the layer needs. Subscribe requests made
/// meanwhile wait for that (their callers bound the wait). Ends when the
/// layer is dropped (its command sender closes).
pub(crate) async fn run(
    client: redis::Client,
    shared: Arc<Shared>,
    mut sink: PubSubSink,
    mut stream: PubSubStream,
    mut commands: mpsc::UnboundedReceiver<Command>,
) {
    let mut held: Vec<Held> = Vec::new();
    // Topics Redis refused when the connection was last made.
    let mut refused: Vec<(String, RedisError)> = Vec::new();
    loop {
        // Topics are read after (re)connecting, so these are subscribed,
        // unless Redis refused the topic.
        answer_held(&mut held, |topic| {
            Some(match refused.iter().find(|(t, _)| t == topic) {
                Some((_, e)) => Err(e.clone()),
                None => Ok(()),
            })
        });
        if let Stop::LayerGone =
            serve(&shared, &mut sink, &mut stream, &mut commands, &mut held).await
        {
            return;
        }
        shared.set_connected(false);
        tracing::warn!("lost the Redis subscription connection; reconnecting");
        let Some((new_sink, new_stream, now_refused)) =
            reconnect(&client, &shared, &mut commands, &mut held).await
        else {
            return;
        };
        (sink, stream, refused) = (new_sink, new_stream, now_refused);
        shared.set_connected(true);
        tracing::info!("Redis subscription connection restored");
    }
}

async fn serve(
    shared: &Shared,
    sink: &mut PubSubSink,
    stream: &mut PubSubStream,
    commands: &mut mpsc::UnboundedReceiver<Command>,
    held: &mut Vec<Held>,
) -> Stop {
    let wait = shared.config.operation_timeout;
    let mut keepalive =
        tokio::time::interval_at(tokio::time::Instant::now() + KEEPALIVE, KEEPALIVE);
    loop {
        tokio::select! {
            command = commands.recv() => match command {
                None => return Stop::LayerGone,
                Some(Command::Subscribe(topic, ack)) => {
                    // Its last member may have left meanwhile: then there is
                    // nothing to subscribe (and nothing to leak).
                    if !shared.wants(&topic) {
                        let _ = ack.send(Ok(()));
                        continue;
                    }
                    match timeout(wait, sink.subscribe(&topic)).await {
                        Ok(Ok(())) => {
                            let _ = ack.send(Ok(()));
                        }
                        // Refused for this topic only (an ACL, say).
                        Ok(Err(e)) if !is_connection_error(&e) => {
                            tracing::warn!(topic, error = %e, "Redis refused a subscription");
                            let _ = ack.send(Err(e));
                        }
                        _ => {
                            held.push((topic, ack));
                            return Stop::Lost;
                        }
                    }
                }
                Some(Command::Unsubscribe(topic)) => {
                    if shared.wants(&topic) {
                        continue;
                    }
                    match timeout(wait, sink.unsubscribe(&topic)).await {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) if !is_connection_error(&e) => {
                            tracing::warn!(topic, error = %e, "Redis refused an unsubscription");
                        }
                        _ => return Stop::Lost,
                    }
                }
            },
            message = stream.next() => match message {
                Some(message) => match std::str::from_utf8(message.get_payload_bytes()) {
                    Ok(payload) => shared.dispatch(message.get_channel_name(), payload),
                    Err(_) => tracing::warn!("non-UTF-8 message from Redis; dropped"),
                },
                None => return Stop::Lost,
            },
            _ = keepalive.tick() => {
                if !matches!(timeout(wait, sink.ping::<redis::Value>()).await, Ok(Ok(_))) {
                    return Stop::Lost;
                }
            }
        }
    }
}

/// Retries until connected and subscribed again, holding subscribe requests
/// meanwhile; returns the topics Redis refused. `None` when the layer was
/// dropped.
async fn reconnect(
    client: &redis::Client,
    shared: &Shared,
    commands: &mut mpsc::UnboundedReceiver<Command>,
    held: &mut Vec<Held>,
) -> Option<(PubSubSink, PubSubStream, Vec<(String, RedisError)>)> {
    let wait = shared.config.operation_timeout;
    let mut backoff = MIN_BACKOFF;
    loop {
        let pause = tokio::time::sleep(backoff);
        tokio::pin!(pause);
        loop {
            tokio::select! {
                () = &mut pause => break,
                command = commands.recv() => match command {
                    None => return None,
                    // The membership is recorded; the topic is subscribed on
                    // reconnect. Requests whose callers gave up are let go,
                    // so a long outage holds no more than are waiting.
                    Some(Command::Subscribe(topic, ack)) => {
                        held.retain(|(_, ack)| !ack.is_closed());
                        held.push((topic, ack));
                    }
                    Some(Command::Unsubscribe(_)) => {}
                },
            }
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
        let Ok(Ok(pubsub)) = timeout(wait, client.get_async_pubsub()).await else {
            continue;
        };
        let (mut sink, stream) = pubsub.split();
        if let Some(refused) = subscribe_all(&mut sink, shared.topics(), wait).await {
            return Some((sink, stream, refused));
        }
    }
}

/// Subscribes to `topics`; a topic Redis refuses is skipped (with a warning)
/// rather than keeping every other topic down, and returned with the
/// reason. `None` if the connection failed.
async fn subscribe_all(
    sink: &mut PubSubSink,
    topics: Vec<String>,
    wait: Duration,
) -> Option<Vec<(String, RedisError)>> {
    match timeout(wait, sink.subscribe(&topics)).await {
        Ok(Ok(())) => return Some(Vec::new()),
        Ok(Err(e)) if !is_connection_error(&e) => {}
        _ => return None,
    }
    let mut refused = Vec::new();
    for topic in topics {
        match timeout(wait, sink.subscribe(&topic)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) if !is_connection_error(&e) => {
                tracing::warn!(topic, error = %e, "Redis refused a subscription");
                refused.push((topic, e));
            }
            _ => return None,
        }
    }
    Some(refused)
}

/// Whether `e` means the connection is unusable (rather than Redis refusing
/// one command).
pub(crate) fn is_connection_error(e: &RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_timeout() || e.is_unrecoverable_error()
}
