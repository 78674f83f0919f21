//! The subscriber task of a layer on a Redis Cluster: every topic the layer
//! wants ([`Shared::topics`]) is `SSUBSCRIBE`d on the master serving its
//! slot, over one RESP3 connection per such master.
//!
//! The task keeps one desired state rather than reacting case by case.
//! Whatever may break it (a connection lost or not answering a PING, a
//! `MOVED` or `CLUSTERDOWN` answer, a server-sent `SUNSUBSCRIBE` because a
//! slot moved away, a topology that changed under a keepalive check) marks
//! the state dirty, and [`Shards::sync`] puts it right: topology read again,
//! connections holding misplaced subscriptions closed, missing subscriptions
//! made; retried with backoff until it succeeds. A failover is one of these:
//! the dead master's connection drops, the topology names it until its
//! replica is promoted, then names the replica, and the sync succeeds.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{AsyncPushSender, MultiplexedConnection, SendError};
use redis::{
    AsyncConnectionConfig, ConnectionInfo, ProtocolVersion, PushInfo, PushKind, RedisError, Value,
};
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout};

use super::slot::slot;
use super::topology::{NodeAddr, Topology};
use crate::layer::Shared;
use crate::subscriber::{Command, Held, is_connection_error};

/// First pause before syncing again; it doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// How often connections are PINGed and the topology is read again, so a
/// connection that died silently, or a slot that moved without telling
/// (a missed push), is noticed.
const KEEPALIVE: Duration = Duration::from_secs(10);

/// A push from one node connection, tagged with the connection's id.
type Push = (u64, PushInfo);

/// The subscription connections and what the task knows of the cluster.
pub(crate) struct Shards {
    /// Seed nodes, asked for the topology when no known node answers.
    seeds: Vec<NodeAddr>,
    /// The first seed's settings (credentials, TLS, RESP3), used for every node.
    template: ConnectionInfo,
    topology: Topology,
    /// Whether the topology must be read again before it is trusted.
    stale: bool,
    nodes: HashMap<NodeAddr, Node>,
    pushes: mpsc::UnboundedSender<Push>,
    next_id: u64,
    wait: Duration,
}

/// One subscription connection and the topics subscribed on it.
struct Node {
    id: u64,
    connection: MultiplexedConnection,
    topics: HashSet<String>,
}

/// Forwards a connection's pushes (messages, and its loss) to the task,
/// tagged so the task knows which connection they came from.
struct Tagged {
    id: u64,
    pushes: mpsc::UnboundedSender<Push>,
}

impl AsyncPushSender for Tagged {
    fn send(&self, info: PushInfo) -> Result<(), SendError> {
        self.pushes.send((self.id, info)).map_err(|_| SendError)
    }
}

/// Why the desired state was not reached; logged, then retried.
type Trouble = String;

impl Shards {
    /// A task state with no connections yet; `seeds` must not be empty.
    pub(crate) fn new(
        seeds: Vec<ConnectionInfo>,
        wait: Duration,
    ) -> (Shards, mpsc::UnboundedReceiver<Push>) {
        let template = seeds[0].clone();
        // RESP3: sharded messages arrive as pushes on an ordinary connection.
        let redis = template
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        let template = template.set_redis_settings(redis);
        let (pushes, received) = mpsc::unbounded_channel();
        let shards = Shards {
            seeds: seeds.iter().filter_map(NodeAddr::of).collect(),
            template,
            topology: Topology::default(),
            stale: true,
            nodes: HashMap::new(),
            pushes,
            next_id: 0,
            wait,
        };
        (shards, received)
    }

    /// Makes every wanted topic subscribed on its slot's master. Returns the
    /// topics Redis refused (an ACL, say), which are skipped rather than
    /// keeping the rest down.
    ///
    /// # Errors
    ///
    /// When the state could not be reached yet (a master unreachable, the
    /// cluster failing over): to be retried later.
    pub(crate) async fn sync(
        &mut self,
        shared: &Shared,
    ) -> Result<Vec<(String, RedisError)>, Trouble> {
        let outcome = self.try_sync(shared).await;
        // Whatever failed, the topology may be why: it is read again first.
        self.stale |= outcome.is_err();
        outcome
    }

    async fn try_sync(&mut self, shared: &Shared) -> Result<Vec<(String, RedisError)>, Trouble> {
        if self.stale {
            self.topology = self.read_topology().await?;
            self.stale = false;
        }
        let mut wanted: HashMap<NodeAddr, Vec<String>> = HashMap::new();
        for topic in shared.topics() {
            let Some(master) = self.topology.master_of(slot(topic.as_bytes())) else {
                return Err(format!("no master serves the slot of {topic}"));
            };
            wanted.entry(master.clone()).or_default().push(topic);
        }
        // Closing a connection drops its subscriptions on the server: the
        // way out for subscriptions on a node that no longer serves them.
        let topology = &self.topology;
        self.nodes.retain(|addr, node| {
            wanted.contains_key(addr)
                && node
                    .topics
                    .iter()
                    .all(|t| topology.master_of(slot(t.as_bytes())) == Some(addr))
        });
        let mut refused = Vec::new();
        for (addr, topics) in wanted {
            let held = self.nodes.get(&addr).map(|node| &node.topics);
            let missing: Vec<String> = topics
                .into_iter()
                .filter(|t| !held.is_some_and(|held| held.contains(t)))
                .collect();
            if missing.is_empty() {
                continue;
            }
            let wait = self.wait;
            let node = self.node(&addr).await?;
            for topic in missing {
                // One topic per command: redis-rs takes the one confirmation
                // push as the reply, so confirmations stay paired with commands.
                let mut command = redis::cmd("SSUBSCRIBE");
                command.arg(&topic);
                let subscribe = command.query_async::<Value>(&mut node.connection);
                match timeout(wait, subscribe).await {
                    Ok(Ok(_)) => {
                        node.topics.insert(topic);
                    }
                    Ok(Err(e)) if e.is_cluster_error() => {
                        return Err(format!("{addr} answered {e}"));
                    }
                    Ok(Err(e)) if !is_connection_error(&e) => {
                        tracing::warn!(topic, error = %e, "Redis refused a subscription");
                        refused.push((topic, e));
                    }
                    _ => {
                        self.nodes.remove(&addr);
                        return Err(format!("lost the connection to {addr}"));
                    }
                }
            }
        }
        Ok(refused)
    }

    /// Unsubscribes `topic` where it is subscribed.
    ///
    /// # Errors
    ///
    /// When the connection failed (it is closed, which unsubscribes it too).
    pub(crate) async fn unsubscribe(&mut self, topic: &str) -> Result<(), Trouble> {
        let Some((addr, node)) = self
            .nodes
            .iter_mut()
            .find(|(_, node)| node.topics.contains(topic))
        else {
            return Ok(());
        };
        let addr = addr.clone();
        node.topics.remove(topic);
        if node.topics.is_empty() {
            // Only shards with wanted topics keep a connection.
            self.nodes.remove(&addr);
            return Ok(());
        }
        let mut command = redis::cmd("SUNSUBSCRIBE");
        command.arg(topic);
        let unsubscribe = command.query_async::<Value>(&mut node.connection);
        match timeout(self.wait, unsubscribe).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) if !is_connection_error(&e) => {
                tracing::warn!(topic, error = %e, "Redis refused an unsubscription");
                Ok(())
            }
            _ => {
                self.nodes.remove(&addr);
                self.stale = true;
                Err(format!("lost the connection to {addr}"))
            }
        }
    }

    /// Handles a push from connection `id`: a message is dispatched.
    ///
    /// # Errors
    ///
    /// When the push says the state broke: the connection was lost, or the
    /// server unsubscribed a topic itself (its slot moved away).
    pub(crate) fn on_push(
        &mut self,
        shared: &Shared,
        id: u64,
        push: PushInfo,
    ) -> Result<(), Trouble> {
        match push.kind {
            PushKind::SMessage => {
                match (
                    push.data.first().and_then(bytes),
                    push.data.get(1).and_then(bytes),
                ) {
                    (Some(topic), Some(payload)) => {
                        match (std::str::from_utf8(topic), std::str::from_utf8(payload)) {
                            (Ok(topic), Ok(payload)) => shared.dispatch(topic, payload),
                            _ => tracing::warn!("non-UTF-8 message from Redis; dropped"),
                        }
                    }
                    _ => tracing::warn!("malformed sharded message from Redis; dropped"),
                }
                Ok(())
            }
            PushKind::Disconnection => match self.forget(id) {
                Some(addr) => Err(format!("lost the connection to {addr}")),
                None => Ok(()),
            },
            // Our own SUNSUBSCRIBEs are confirmed for topics no longer in the
            // node's set; one for a topic still in it came from the server.
            PushKind::SUnsubscribe => {
                let topic = push.data.first().and_then(bytes).unwrap_or_default();
                let ours = self
                    .nodes
                    .values()
                    .any(|node| node.id == id && node.topics.iter().any(|t| t.as_bytes() == topic));
                if !ours {
                    return Ok(());
                }
                // Closed: its replies may now be out of step with its commands.
                let addr = self.forget(id);
                Err(format!(
                    "{} unsubscribed a topic itself (its slot moved)",
                    addr.map_or_else(String::new, |a| a.to_string())
                ))
            }
            _ => Ok(()),
        }
    }

    /// PINGs every connection and reads the topology again.
    ///
    /// # Errors
    ///
    /// When a connection does not answer (it is closed) or the topology
    /// changed or cannot be read.
    pub(crate) async fn check(&mut self) -> Result<(), Trouble> {
        let mut dead = Vec::new();
        for (addr, node) in &mut self.nodes {
            let command = redis::cmd("PING");
            let ping = command.query_async::<Value>(&mut node.connection);
            if !matches!(timeout(self.wait, ping).await, Ok(Ok(_))) {
                dead.push(addr.clone());
            }
        }
        for addr in &dead {
            self.nodes.remove(addr);
        }
        let topology = self.read_topology().await;
        if let Some(addr) = dead.first() {
            self.stale = true;
            return Err(format!("{addr} did not answer a PING"));
        }
        match topology {
            Ok(topology) if topology == self.topology => Ok(()),
            Ok(topology) => {
                self.topology = topology;
                Err("the cluster's topology changed".to_owned())
            }
            Err(e) => {
                self.stale = true;
                Err(e)
            }
        }
    }

    /// Closes connection `id`, returning its node.
    fn forget(&mut self, id: u64) -> Option<NodeAddr> {
        let addr = self
            .nodes
            .iter()
            .find(|(_, node)| node.id == id)
            .map(|(addr, _)| addr.clone())?;
        self.nodes.remove(&addr);
        self.stale = true;
        Some(addr)
    }

    /// The connection to `addr`, made if there is none.
    async fn node(&mut self, addr: &NodeAddr) -> Result<&mut Node, Trouble> {
        if !self.nodes.contains_key(addr) {
            let id = self.next_id;
            self.next_id += 1;
            let config = AsyncConnectionConfig::new()
                .set_connection_timeout(Some(self.wait))
                .set_response_timeout(Some(self.wait))
                .set_push_sender(Tagged {
                    id,
                    pushes: self.pushes.clone(),
                });
            let client = redis::Client::open(addr.connection_info(&self.template))
                .map_err(|e| format!("{addr}: {e}"))?;
            let connection = timeout(
                self.wait,
                client.get_multiplexed_async_connection_with_config(&config),
            )
            .await
            .map_err(|_| format!("{addr}: no answer within {:?}", self.wait))?
            .map_err(|e| format!("{addr}: {e}"))?;
            self.nodes.insert(
                addr.clone(),
                Node {
                    id,
                    connection,
                    topics: HashSet::new(),
                },
            );
        }
        Ok(self.nodes.get_mut(addr).expect("inserted above"))
    }

    /// Reads the topology from a node we know: connected ones first, then
    /// the last topology's masters, then the seeds.
    async fn read_topology(&self) -> Result<Topology, Trouble> {
        let mut candidates: Vec<NodeAddr> = self.nodes.keys().cloned().collect();
        for addr in self.topology.masters().into_iter().chain(&self.seeds) {
            if !candidates.contains(addr) {
                candidates.push(addr.clone());
            }
        }
        Topology::fetch(&candidates, &self.template, self.wait).await
    }
}

fn bytes(value: &Value) -> Option<&[u8]> {
    match value {
        Value::BulkString(bytes) => Some(bytes),
        _ => None,
    }
}

/// Keeps the subscriptions in the desired state for as long as the layer
/// lives: serves subscribe requests (answered once their topic is live, or
/// refused), dispatches messages, and syncs again with backoff whenever
/// something broke. Ends when the layer is dropped.
pub(crate) async fn run(
    shared: Arc<Shared>,
    mut shards: Shards,
    mut pushes: mpsc::UnboundedReceiver<Push>,
    mut commands: mpsc::UnboundedReceiver<Command>,
) {
    let mut held: Vec<Held> = Vec::new();
    let mut dirty = false;
    let mut backoff = MIN_BACKOFF;
    let retry = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(retry);
    let mut keepalive = tokio::time::interval_at(Instant::now() + KEEPALIVE, KEEPALIVE);
    loop {
        let trouble = tokio::select! {
            command = commands.recv() => match command {
                None => return,
                Some(Command::Subscribe(topic, ack)) => {
                    // Its last member may have left meanwhile.
                    if !shared.wants(&topic) {
                        let _ = ack.send(Ok(()));
                        continue;
                    }
                    held.push((topic, ack));
                    if !dirty {
                        dirty = true;
                        retry.as_mut().reset(Instant::now());
                    }
                    continue;
                }
                Some(Command::Unsubscribe(topic)) => {
                    if shared.wants(&topic) {
                        continue;
                    }
                    shards.unsubscribe(&topic).await.err()
                }
            },
            Some((id, push)) = pushes.recv() => shards.on_push(&shared, id, push).err(),
            _ = keepalive.tick() => shards.check().await.err(),
            () = &mut retry, if dirty => {
                match shards.sync(&shared).await {
                    Ok(refused) => {
                        dirty = false;
                        backoff = MIN_BACKOFF;
                        if !shared.connected.load(std::sync::atomic::Ordering::Acquire) {
                            tracing::info!("Redis Cluster subscriptions restored");
                        }
                        shared.set_connected(true);
                        for (topic, ack) in held.drain(..) {
                            let outcome = match refused.iter().find(|(t, _)| *t == topic) {
                                Some((_, e)) => Err(e.clone()),
                                None => Ok(()),
                            };
                            let _ = ack.send(outcome);
                        }
                    }
                    Err(reason) => {
                        shared.set_connected(false);
                        tracing::debug!(reason, "Redis Cluster subscriptions not restored yet");
                        retry.as_mut().reset(Instant::now() + backoff);
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                    }
                }
                continue;
            }
        };
        // Already dirty: the scheduled sync puts this right too.
        if let Some(reason) = trouble
            && !dirty
        {
            tracing::warn!(reason, "Redis Cluster subscriptions broke; restoring");
            shared.set_connected(false);
            dirty = true;
            retry.as_mut().reset(Instant::now());
        }
    }
}
