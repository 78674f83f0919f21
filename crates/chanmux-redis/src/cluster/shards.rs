//! [`Shards`]: the subscription connections of a layer on a Redis Cluster,
//! one RESP3 connection per master serving a wanted topic, and what the
//! subscriber task knows of the cluster.
//!
//! Every node is handled on its own: a master that is down (failing over,
//! say) fails its own topics only, while the topics of the healthy shards
//! are subscribed, and their callers answered, as usual. Connections are
//! made at once and subscriptions are pipelined on each connection, so a
//! round costs about one operation timeout at worst, however many shards
//! and topics it touches.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use futures_util::{StreamExt, stream};
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ConnectionInfo, ProtocolVersion, PushInfo, RedisError, Value};
use tokio::time::timeout;

use super::pushes::{self, Receivers, Senders};
use super::slot::slot;
use super::topology::{NodeAddr, Topology, first_answer};
use super::trouble::Trouble;
use crate::layer::Shared;
use crate::subscriber::is_connection_error;

/// How many `SSUBSCRIBE`s may be in flight on one connection at once.
const PIPELINE: usize = 64;

/// The subscription connections and what the task knows of the cluster.
pub(crate) struct Shards {
    shared: Arc<Shared>,
    /// Seed nodes, asked for the topology when no known node answers.
    seeds: Vec<NodeAddr>,
    /// The first seed's settings (credentials, TLS, RESP3), used for every node.
    template: ConnectionInfo,
    topology: Topology,
    /// Whether the topology must be read again before it is trusted.
    stale: bool,
    nodes: HashMap<NodeAddr, Node>,
    /// Masters that failed since the last full sync: a round that only
    /// adds topics leaves theirs to the next full sync rather than waiting
    /// on them again.
    failing: HashSet<NodeAddr>,
    pushes: Senders,
    next_id: u64,
    wait: Duration,
}

/// One subscription connection and the topics subscribed on it.
struct Node {
    id: u64,
    connection: MultiplexedConnection,
    topics: HashSet<String>,
    /// Our `SUNSUBSCRIBE`s whose confirmation push has not been seen yet,
    /// by topic. redis-rs hands each confirmation to the push sender as
    /// well as returning it as the reply, so it may be read after the
    /// topic was subscribed again: counted here, it is not mistaken for
    /// the server unsubscribing the topic itself.
    unsubscribing: HashMap<String, u32>,
}

/// What a round of subscriptions achieved.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    /// Topics Redis refused (an ACL, say): skipped rather than retried.
    pub(crate) refused: Vec<(String, RedisError)>,
    /// What failed, to be retried with a full sync; empty when all is well.
    pub(crate) failed: Vec<Trouble>,
}

impl Outcome {
    fn failed(trouble: Trouble) -> Outcome {
        Outcome {
            refused: Vec::new(),
            failed: vec![trouble],
        }
    }
}

/// What one node's round achieved.
struct NodeRound {
    refused: Vec<(String, RedisError)>,
    trouble: Option<Trouble>,
    /// The connection failed: it is to be closed.
    lost: bool,
}

impl NodeRound {
    /// A round the node did not finish in time: its connection is closed
    /// (what it did subscribe goes with it) and the topics retried.
    fn hung(addr: &NodeAddr, wait: Duration) -> Self {
        NodeRound {
            refused: Vec::new(),
            trouble: Some(Trouble::Timeout {
                addr: addr.clone(),
                wait,
            }),
            lost: true,
        }
    }
}

impl Shards {
    /// A task state with no connections yet; `seeds` must not be empty.
    pub(crate) fn new(
        shared: Arc<Shared>,
        seeds: Vec<ConnectionInfo>,
        wait: Duration,
    ) -> (Shards, Receivers) {
        let template = seeds[0].clone();
        // RESP3: sharded messages arrive as pushes on an ordinary connection.
        let redis = template
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        let template = template.set_redis_settings(redis);
        let (pushes, received) = pushes::queues(shared.clone());
        let shards = Shards {
            shared,
            seeds: seeds.iter().filter_map(NodeAddr::of).collect(),
            template,
            topology: Topology::default(),
            stale: true,
            nodes: HashMap::new(),
            failing: HashSet::new(),
            pushes,
            next_id: 0,
            wait,
        };
        (shards, received)
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Puts the whole state right: topology read again if it may be stale,
    /// connections holding misplaced subscriptions closed, every wanted
    /// topic subscribed on its slot's master. The way back from any trouble.
    pub(crate) async fn sync(&mut self) -> Outcome {
        self.failing.clear();
        if self.stale {
            match self.read_topology().await {
                Ok(topology) => {
                    self.topology = topology;
                    self.stale = false;
                }
                Err(e) => return Outcome::failed(e.into()),
            }
        }
        let topics = self.shared.topics();
        let masters: HashSet<&NodeAddr> = topics
            .iter()
            .filter_map(|t| self.topology.master_of(slot(t.as_bytes())))
            .collect();
        // Closing a connection drops its subscriptions on the server: the
        // way out for subscriptions on a node that no longer serves them.
        let topology = &self.topology;
        self.nodes.retain(|addr, node| {
            masters.contains(addr)
                && node
                    .topics
                    .iter()
                    .all(|t| topology.master_of(slot(t.as_bytes())) == Some(addr))
        });
        // Subscribed, but no longer wanted (its last member left while it
        // was being subscribed): left, so no stale subscription stays.
        let wanted: HashSet<&str> = topics.iter().map(String::as_str).collect();
        let unwanted: Vec<String> = self
            .nodes
            .values()
            .flat_map(|node| node.topics.iter())
            .filter(|t| !wanted.contains(t.as_str()))
            .cloned()
            .collect();
        for topic in unwanted {
            // A failure closes that connection; the round below reconnects.
            let _ = self.unsubscribe(&topic).await;
        }
        self.subscribe(topics).await
    }

    /// Subscribes each of `topics` that is not yet on its slot's master, as
    /// the topology in use says: the cheap way to add topics (one group's
    /// topic rather than every topic). Topics on a master that failed since
    /// the last full sync are left to the next one.
    pub(crate) async fn subscribe(&mut self, topics: Vec<String>) -> Outcome {
        let mut outcome = Outcome::default();
        let mut wanted: HashMap<NodeAddr, Vec<String>> = HashMap::new();
        for topic in topics {
            match self.topology.master_of(slot(topic.as_bytes())) {
                Some(master) if self.is_on(master, &topic) || self.failing.contains(master) => {}
                Some(master) => wanted.entry(master.clone()).or_default().push(topic),
                None => outcome.failed.push(Trouble::NoMaster(topic)),
            }
        }
        // All missing connections at once: an unreachable master costs one
        // timeout in all, and none to the other shards.
        let absent: Vec<(NodeAddr, u64)> = wanted
            .keys()
            .filter(|addr| !self.nodes.contains_key(*addr))
            .map(|addr| {
                self.next_id += 1;
                (addr.clone(), self.next_id)
            })
            .collect();
        let connected = join_all(absent.iter().map(|(addr, id)| self.connect(addr, *id))).await;
        for ((addr, _), connected) in absent.into_iter().zip(connected) {
            match connected {
                Ok(node) => {
                    self.nodes.insert(addr, node);
                }
                Err(trouble) => {
                    wanted.remove(&addr);
                    self.failing.insert(addr);
                    outcome.failed.push(trouble);
                }
            }
        }
        let wait = self.wait;
        let rounds = self
            .nodes
            .iter_mut()
            .filter_map(|(addr, node)| {
                let topics = wanted.remove(addr)?;
                Some(async move {
                    // One timeout for the node's whole round: a hung master
                    // costs one, however many topics wait on it.
                    let round = timeout(wait, node.subscribe(addr, topics, wait))
                        .await
                        .unwrap_or_else(|_| NodeRound::hung(addr, wait));
                    (addr.clone(), round)
                })
            })
            .collect::<Vec<_>>();
        for (addr, round) in join_all(rounds).await {
            outcome.refused.extend(round.refused);
            if let Some(trouble) = round.trouble {
                outcome.failed.push(trouble);
                self.failing.insert(addr.clone());
            }
            if round.lost {
                self.nodes.remove(&addr);
            }
        }
        // Whatever failed, the topology may be why: it is read again first.
        self.stale |= !outcome.failed.is_empty();
        outcome
    }

    /// Whether `topic` is subscribed on its slot's master.
    pub(crate) fn is_live(&self, topic: &str) -> bool {
        self.topology
            .master_of(slot(topic.as_bytes()))
            .is_some_and(|master| self.is_on(master, topic))
    }

    fn is_on(&self, addr: &NodeAddr, topic: &str) -> bool {
        self.nodes
            .get(addr)
            .is_some_and(|node| node.topics.contains(topic))
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
        *node.unsubscribing.entry(topic.to_owned()).or_default() += 1;
        let mut command = redis::cmd("SUNSUBSCRIBE");
        command.arg(topic);
        let unsubscribe = command.query_async::<Value>(&mut node.connection);
        match timeout(self.wait, unsubscribe).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) if !is_connection_error(&e) => {
                // Answered with an error: no confirmation push will come.
                node.unconfirmed(topic);
                tracing::warn!(topic, error = %e, "Redis refused an unsubscription");
                Ok(())
            }
            _ => {
                self.nodes.remove(&addr);
                self.stale = true;
                Err(Trouble::Lost(addr))
            }
        }
    }

    /// Handles a push about connection `id`'s state (see
    /// [`Receivers::control`]).
    ///
    /// # Errors
    ///
    /// When the push says the state broke: the connection was lost, or the
    /// server unsubscribed a topic itself (its slot moved away).
    pub(crate) fn on_push(&mut self, id: u64, push: &PushInfo) -> Result<(), Trouble> {
        let Some((addr, node)) = self.nodes.iter_mut().find(|(_, node)| node.id == id) else {
            // A connection already closed: nothing of ours depends on it.
            return Ok(());
        };
        match push.kind {
            redis::PushKind::Disconnection => {}
            redis::PushKind::SUnsubscribe => {
                let topic = push.data.first().and_then(bytes).unwrap_or_default();
                let topic = std::str::from_utf8(topic).unwrap_or_default();
                // The confirmation of one of ours, or of a topic we no
                // longer want: nothing broke.
                if node.unconfirmed(topic) || !node.topics.contains(topic) {
                    return Ok(());
                }
            }
            _ => return Ok(()),
        }
        let addr = addr.clone();
        // Closed: after a server-sent SUNSUBSCRIBE its replies may be out of
        // step with its commands.
        self.nodes.remove(&addr);
        self.stale = true;
        Err(match push.kind {
            redis::PushKind::Disconnection => Trouble::Lost(addr),
            _ => Trouble::Unsubscribed(addr),
        })
    }

    /// PINGs every connection and reads the topology again.
    ///
    /// # Errors
    ///
    /// When a connection does not answer (it is closed) or the topology
    /// changed or cannot be read.
    pub(crate) async fn check(&mut self) -> Result<(), Trouble> {
        let wait = self.wait;
        let pings = self.nodes.iter().map(|(addr, node)| {
            let mut connection = node.connection.clone();
            async move {
                let command = redis::cmd("PING");
                let ping = command.query_async::<Value>(&mut connection);
                let alive = matches!(timeout(wait, ping).await, Ok(Ok(_)));
                (addr.clone(), alive)
            }
        });
        let dead: Vec<NodeAddr> = join_all(pings)
            .await
            .into_iter()
            .filter_map(|(addr, alive)| (!alive).then_some(addr))
            .collect();
        if let Some(addr) = dead.first() {
            for addr in &dead {
                self.nodes.remove(addr);
            }
            self.stale = true;
            return Err(Trouble::Timeout {
                addr: addr.clone(),
                wait,
            });
        }
        match self.read_topology().await {
            Ok(topology) if topology == self.topology => Ok(()),
            Ok(topology) => {
                self.topology = topology;
                Err(Trouble::TopologyChanged)
            }
            Err(e) => {
                self.stale = true;
                Err(e.into())
            }
        }
    }

    /// A connection to `addr`, numbered `id`.
    async fn connect(&self, addr: &NodeAddr, id: u64) -> Result<Node, Trouble> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.wait))
            .set_response_timeout(Some(self.wait))
            .set_push_sender(self.pushes.tagged(id));
        let failed = |source| Trouble::Connect {
            addr: addr.clone(),
            source,
        };
        let client = redis::Client::open(addr.connection_info(&self.template)).map_err(failed)?;
        let connection = timeout(
            self.wait,
            client.get_multiplexed_async_connection_with_config(&config),
        )
        .await
        .map_err(|_| Trouble::Timeout {
            addr: addr.clone(),
            wait: self.wait,
        })?
        .map_err(failed)?;
        Ok(Node {
            id,
            connection,
            topics: HashSet::new(),
            unsubscribing: HashMap::new(),
        })
    }

    /// Reads the topology: over the subscription connections if there are
    /// any (RESP3 takes ordinary commands on them, so no new connection is
    /// made every keepalive), else from the last topology's masters and the
    /// seeds; each group asked at once, so a hung node costs one timeout.
    async fn read_topology(&self) -> Result<Topology, super::topology::TopologyError> {
        let over_connections = self.nodes.iter().map(|(addr, node)| {
            let mut connection = node.connection.clone();
            Box::pin(async move { Topology::query(&mut connection, addr).await })
        });
        if let Ok(topology) = first_answer(over_connections, self.wait).await {
            return Ok(topology);
        }
        let mut candidates: Vec<NodeAddr> = Vec::new();
        for addr in self.topology.masters().into_iter().chain(&self.seeds) {
            if !candidates.contains(addr) && !self.nodes.contains_key(addr) {
                candidates.push(addr.clone());
            }
        }
        Topology::fetch(&candidates, &self.template, self.wait).await
    }
}

impl Node {
    /// Subscribes `topics` here, pipelined, one topic per command: redis-rs
    /// takes the one confirmation push as the reply, so confirmations stay
    /// paired with commands.
    async fn subscribe(
        &mut self,
        addr: &NodeAddr,
        topics: Vec<String>,
        wait: Duration,
    ) -> NodeRound {
        let connection = &self.connection;
        let replies: Vec<_> = stream::iter(topics)
            .map(|topic| {
                let mut connection = connection.clone();
                async move {
                    let mut command = redis::cmd("SSUBSCRIBE");
                    command.arg(&topic);
                    let reply = timeout(wait, command.query_async::<Value>(&mut connection)).await;
                    (topic, reply)
                }
            })
            .buffer_unordered(PIPELINE)
            .collect()
            .await;
        let mut round = NodeRound {
            refused: Vec::new(),
            trouble: None,
            lost: false,
        };
        for (topic, reply) in replies {
            match reply {
                Ok(Ok(_)) => {
                    self.topics.insert(topic);
                }
                Ok(Err(e)) if e.is_cluster_error() => {
                    round.trouble = Some(Trouble::Cluster {
                        addr: addr.clone(),
                        source: e,
                    });
                }
                Ok(Err(e)) if !is_connection_error(&e) => {
                    tracing::warn!(topic, error = %e, "Redis refused a subscription");
                    round.refused.push((topic, e));
                }
                _ => {
                    round.lost = true;
                    round.trouble = Some(Trouble::Lost(addr.clone()));
                }
            }
        }
        round
    }

    /// Consumes one pending confirmation of our `SUNSUBSCRIBE` of `topic`;
    /// whether there was one.
    fn unconfirmed(&mut self, topic: &str) -> bool {
        let Some(pending) = self.unsubscribing.get_mut(topic) else {
            return false;
        };
        *pending -= 1;
        if *pending == 0 {
            self.unsubscribing.remove(topic);
        }
        true
    }
}

pub(crate) fn bytes(value: &Value) -> Option<&[u8]> {
    match value {
        Value::BulkString(bytes) => Some(bytes),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RedisLayerConfig;
    use crate::testing::RedisCluster;
    use redis::IntoConnectionInfo;

    /// The interleaving behind a review finding: redis-rs forwards the
    /// confirmation of our `SUNSUBSCRIBE` as a push as well as returning
    /// it, so after leaving a topic and subscribing it again at once, the
    /// task may read that push when the topic is subscribed again. It must
    /// not be taken for the server unsubscribing the topic (which closes
    /// the shard's connection and loses its messages for a while).
    #[tokio::test]
    async fn a_late_confirmation_of_our_unsubscription_is_not_taken_for_the_servers() {
        let cluster = RedisCluster::start().await;
        let seeds = cluster
            .urls()
            .iter()
            .map(|url| url.as_str().into_connection_info().unwrap())
            .collect();
        let shared = Shared::new(RedisLayerConfig::default());
        let (mut shards, mut pushes) = Shards::new(shared, seeds, Duration::from_secs(2));
        assert!(shards.sync().await.failed.is_empty());
        // Two topics on one master: `stay` keeps the connection open.
        let stay = "chanmux:g:stay".to_owned();
        let port = cluster.master_of(&stay).await;
        let mut flip = String::new();
        for i in 0.. {
            flip = format!("chanmux:g:flip{i}");
            if cluster.master_of(&flip).await == port {
                break;
            }
        }
        let outcome = shards.subscribe(vec![stay.clone(), flip.clone()]).await;
        assert!(outcome.failed.is_empty(), "{outcome:?}");

        shards.unsubscribe(&flip).await.unwrap();
        let outcome = shards.subscribe(vec![flip.clone()]).await;
        assert!(outcome.failed.is_empty(), "{outcome:?}");
        // Only now the pushes: the confirmation was queued during unsubscribe.
        let mut confirmations = 0;
        while let Ok((id, push)) = pushes.control.try_recv() {
            confirmations += usize::from(push.kind == redis::PushKind::SUnsubscribe);
            shards.on_push(id, &push).unwrap();
        }
        assert_eq!(confirmations, 1);
        assert!(shards.is_live(&stay) && shards.is_live(&flip));
    }
}
