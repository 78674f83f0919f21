//! The subscriber task of a layer on a Redis Cluster: every topic the layer
//! wants ([`Shared::topics`]) is `SSUBSCRIBE`d on the master serving its
//! slot ([`Shards`]).
//!
//! The task keeps one desired state rather than reacting case by case. A
//! new group's topic is just subscribed on its master (unless that master
//! failed since the last full sync). Whatever may break the state (a
//! connection lost or not answering a PING, a `MOVED` or `CLUSTERDOWN`
//! answer, a server-sent `SUNSUBSCRIBE` because a slot moved away, a
//! topology that changed under a keepalive check) calls for a full
//! [`Shards::sync`]: topology read again, connections holding misplaced
//! subscriptions closed, missing subscriptions made; retried with backoff
//! until it succeeds. Each round
//! answers the subscribe requests whose topics it made live, so a failing
//! shard delays its own groups only. A failover is one of these: the dead
//! master's connection drops, the topology names it until its replica is
//! promoted, then names the replica, and the sync succeeds.

use redis::{PushInfo, PushKind};
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};

use super::pushes::Receivers;
use super::shards::{Shards, bytes};
use crate::layer::Shared;
use crate::subscriber::{Command, Held, KEEPALIVE, MAX_BACKOFF, MIN_BACKOFF, answer_held};

/// Keeps the subscriptions in the desired state for as long as the layer
/// lives: serves subscribe requests (answered once their topic is live, or
/// refused), dispatches messages, and syncs again with backoff whenever
/// something broke. Ends when the layer is dropped.
pub(crate) async fn run(
    mut shards: Shards,
    mut pushes: Receivers,
    mut commands: mpsc::UnboundedReceiver<Command>,
) {
    let shared = shards.shared().clone();
    let mut held: Vec<Held> = Vec::new();
    // Held topics await a round that subscribes them.
    let mut pending = false;
    // A full sync is needed; `retry` is when it is due.
    let mut broken = false;
    let mut backoff = MIN_BACKOFF;
    let retry = tokio::time::sleep(std::time::Duration::ZERO);
    tokio::pin!(retry);
    let mut keepalive = tokio::time::interval_at(Instant::now() + KEEPALIVE, KEEPALIVE);
    // After a long sync, one check later rather than a burst of them.
    keepalive.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        let trouble = tokio::select! {
            command = commands.recv() => match command {
                None => return,
                Some(Command::Subscribe(topic, ack)) => {
                    // Its last member may have left meanwhile, or another
                    // member's request made it live already.
                    if !shared.wants(&topic) || shards.is_live(&topic) {
                        let _ = ack.send(Ok(()));
                        continue;
                    }
                    // Requests arriving together are served by one round.
                    held.push((topic, ack));
                    pending = true;
                    continue;
                }
                Some(Command::Unsubscribe(topic)) => {
                    if shared.wants(&topic) {
                        continue;
                    }
                    shards.unsubscribe(&topic).await.err()
                }
            },
            Some((id, push)) = pushes.control.recv() => shards.on_push(id, &push).err(),
            Some((_, push)) = pushes.messages.recv() => {
                dispatch(&shared, &push);
                continue;
            }
            _ = keepalive.tick() => shards.check().await.err(),
            // Even while broken: a group on a healthy shard is not kept
            // waiting for the full sync of a shard failing over.
            () = std::future::ready(()), if pending => {
                pending = false;
                // Only what is still wanted: a member may have left since.
                let topics = held
                    .iter()
                    .filter(|(topic, _)| shared.wants(topic))
                    .map(|(topic, _)| topic.clone())
                    .collect();
                let outcome = shards.subscribe(topics).await;
                answer(&shared, &shards, &mut held, &outcome.refused);
                outcome.failed.into_iter().next()
            }
            () = &mut retry, if broken => {
                let outcome = shards.sync().await;
                answer(&shared, &shards, &mut held, &outcome.refused);
                if outcome.failed.is_empty() {
                    tracing::info!("Redis Cluster subscriptions restored");
                    broken = false;
                    backoff = MIN_BACKOFF;
                    shared.set_connected(true);
                } else {
                    for reason in &outcome.failed {
                        tracing::debug!(%reason, "Redis Cluster subscriptions not restored yet");
                    }
                    retry.as_mut().reset(Instant::now() + backoff);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                continue;
            }
        };
        // Already broken: the scheduled sync puts this right too.
        if let Some(reason) = trouble
            && !broken
        {
            tracing::warn!(%reason, "Redis Cluster subscriptions broke; restoring");
            shared.set_connected(false);
            broken = true;
            retry.as_mut().reset(Instant::now());
        }
    }
}

/// Answers the held requests whose topic is now live, refused, or no
/// longer wanted; the others wait for a later round.
fn answer(
    shared: &Shared,
    shards: &Shards,
    held: &mut Vec<Held>,
    refused: &[(String, redis::RedisError)],
) {
    answer_held(held, |topic| {
        match refused.iter().find(|(t, _)| t == topic) {
            Some((_, e)) => Some(Err(e.clone())),
            None => (!shared.wants(topic) || shards.is_live(topic)).then_some(Ok(())),
        }
    });
}

/// Hands a sharded message to the local channels it is for.
fn dispatch(shared: &Shared, push: &PushInfo) {
    if push.kind != PushKind::SMessage {
        return;
    }
    let (Some(topic), Some(payload)) = (
        push.data.first().and_then(bytes),
        push.data.get(1).and_then(bytes),
    ) else {
        tracing::warn!("malformed sharded message from Redis; dropped");
        return;
    };
    match (std::str::from_utf8(topic), std::str::from_utf8(payload)) {
        (Ok(topic), Ok(payload)) => shared.dispatch(topic, payload),
        _ => tracing::warn!("non-UTF-8 message from Redis; dropped"),
    }
}
