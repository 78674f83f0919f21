//! [`RedisLayer`]: the [`ChannelLayer`] over Redis pub/sub.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, MutexGuard};
use std::time::Duration;

use chanmux_core::layer::{
    BoxFuture, ChannelLayer, Deliver, LayerError, LayerStats, LocalChannels, Registry,
};
use chanmux_core::{ChannelName, GroupName, Message};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{ConnectionInfo, IntoConnectionInfo};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::timeout;

use crate::RedisLayerConfig;
use crate::cluster;
use crate::subscriber::{self, Command};

/// A channel layer shared by every process connected to one Redis, or to
/// one Redis Cluster ([`RedisLayer::connect_cluster`]).
///
/// Cheap to clone; clones share channels, groups and connections. The
/// background task that receives from Redis stops when the last clone drops.
#[derive(Clone)]
pub struct RedisLayer {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    publisher: Publisher,
    commands: mpsc::UnboundedSender<Command>,
    subscriber: JoinHandle<()>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.subscriber.abort();
    }
}

/// The connection messages are published on.
#[derive(Clone)]
enum Publisher {
    /// One Redis: `PUBLISH`, reaching every subscriber.
    Server(ConnectionManager),
    /// A cluster: `SPUBLISH`, routed to the master of the topic's slot and
    /// reaching the subscribers of that shard only.
    Cluster(ClusterConnection),
}

impl Publisher {
    /// `PUBLISH` or `SPUBLISH` of `payload` to `topic`: the command is built
    /// once, and only the connection it goes on differs.
    async fn publish(
        mut self,
        topic: Joined<'_>,
        payload: impl redis::ToRedisArgs,
    ) -> redis::RedisResult<i64> {
        let name = match self {
            Publisher::Server(_) => "PUBLISH",
            Publisher::Cluster(_) => "SPUBLISH",
        };
        let mut command = redis::cmd(name);
        command.arg(topic).arg(payload);
        match &mut self {
            Publisher::Server(connection) => command.query_async(connection).await,
            Publisher::Cluster(connection) => command.query_async(connection).await,
        }
    }
}

/// What the layer and its subscriber task both see.
pub(crate) struct Shared {
    /// `<prefix>:p:<id>`: where this instance's channels receive.
    process_topic: String,
    /// `<prefix>:g:`: the start of every group's Redis channel.
    group_prefix: String,
    pub(crate) config: RedisLayerConfig,
    /// Channels named `<id>.<n>`, `<id>` being this instance's id.
    local: LocalChannels,
    pub(crate) connected: AtomicBool,
}

/// Why [`RedisLayer::connect`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The URL is not a Redis URL.
    #[error("invalid Redis URL {url:?}: {source}")]
    InvalidUrl {
        /// The URL given.
        url: String,
        /// What the client said.
        #[source]
        source: redis::RedisError,
    },
    /// Redis did not answer (refused, unreachable or timed out).
    #[error("cannot reach Redis at {url}: {reason}")]
    Unreachable {
        /// The URL given.
        url: String,
        /// What went wrong.
        reason: String,
    },
}

impl ConnectError {
    /// Makes [`ConnectError::Unreachable`] errors for `url`.
    fn unreachable(url: &str) -> impl Fn(String) -> ConnectError + '_ {
        move |reason| ConnectError::Unreachable {
            url: url.to_owned(),
            reason,
        }
    }
}

impl RedisLayer {
    /// Connects to the Redis at `url` (e.g. `redis://127.0.0.1:6379/`) with
    /// default settings.
    ///
    /// # Errors
    ///
    /// A [`ConnectError`] when the URL is invalid or Redis cannot be reached:
    /// the layer never starts half-connected.
    pub async fn connect(url: &str) -> Result<Self, ConnectError> {
        RedisLayer::connect_with_config(url, RedisLayerConfig::default()).await
    }

    /// Connects with `config`.
    ///
    /// # Errors
    ///
    /// As [`connect`](RedisLayer::connect).
    pub async fn connect_with_config(
        url: &str,
        config: RedisLayerConfig,
    ) -> Result<Self, ConnectError> {
        let client = redis::Client::open(url).map_err(|source| ConnectError::InvalidUrl {
            url: url.to_owned(),
            source,
        })?;
        let unreachable = ConnectError::unreachable(url);
        let wait = config.operation_timeout;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(wait))
            .set_response_timeout(Some(wait));
        // The subscription connection first: one attempt, so a refused
        // connection fails at once rather than after the publisher's retries.
        let pubsub = timeout(wait, client.get_async_pubsub())
            .await
            .map_err(|_| unreachable(format!("no answer within {wait:?}")))?
            .map_err(|e| unreachable(e.to_string()))?;
        let publisher = timeout(
            wait,
            ConnectionManager::new_with_config(client.clone(), manager_config),
        )
        .await
        .map_err(|_| unreachable(format!("no answer within {wait:?}")))?
        .map_err(|e| unreachable(e.to_string()))?;

        let shared = Shared::new(config);
        let (mut sink, stream) = pubsub.split();
        timeout(wait, sink.subscribe(shared.topics()))
            .await
            .map_err(|_| unreachable(format!("no answer within {wait:?}")))?
            .map_err(|e| unreachable(e.to_string()))?;
        let task_shared = shared.clone();
        Ok(RedisLayer::start(
            shared,
            Publisher::Server(publisher),
            |commands| subscriber::run(client, task_shared, sink, stream, commands),
        ))
    }

    /// Connects to the Redis Cluster (Redis 7 or later) that `seeds` belong
    /// to (e.g. `["redis://10.0.0.1:6379/", "redis://10.0.0.2:6379/"]`; any
    /// one reachable node is enough), with default settings.
    ///
    /// Channels are sharded: a group's messages go through the shard its
    /// Redis channel hashes to (`SPUBLISH`), and an instance subscribes
    /// (`SSUBSCRIBE`) only on the shards of the groups it has members in,
    /// and of its own channels' topic. After a failover or a slot move it
    /// subscribes again on the new master; messages sent meanwhile are lost.
    ///
    /// # Errors
    ///
    /// A [`ConnectError`] when a seed is not a Redis URL, or no seed answers
    /// as a cluster node serving every slot's topic.
    pub async fn connect_cluster(seeds: &[&str]) -> Result<Self, ConnectError> {
        RedisLayer::connect_cluster_with_config(seeds, RedisLayerConfig::default()).await
    }

    /// Connects to a Redis Cluster with `config`.
    ///
    /// # Errors
    ///
    /// As [`connect_cluster`](RedisLayer::connect_cluster).
    pub async fn connect_cluster_with_config(
        seeds: &[&str],
        config: RedisLayerConfig,
    ) -> Result<Self, ConnectError> {
        let url = seeds.join(",");
        let unreachable = ConnectError::unreachable(&url);
        let infos = seeds
            .iter()
            .map(|seed| {
                seed.into_connection_info()
                    .map_err(|source| ConnectError::InvalidUrl {
                        url: (*seed).to_owned(),
                        source,
                    })
            })
            .collect::<Result<Vec<ConnectionInfo>, _>>()?;
        if infos.is_empty() {
            return Err(unreachable("no seed node given".to_owned()));
        }
        let wait = config.operation_timeout;
        // Subscriptions first: they read the topology, so a seed that is
        // not a cluster node fails here with Redis's reason.
        let shared = Shared::new(config);
        let (mut shards, pushes) =
            cluster::shards::Shards::new(shared.clone(), infos.clone(), wait);
        let outcome = timeout(wait * 2, shards.sync())
            .await
            .map_err(|_| unreachable(format!("no answer within {:?}", wait * 2)))?;
        if let Some(trouble) = outcome.failed.first() {
            return Err(unreachable(trouble.to_string()));
        }
        let client = ClusterClientBuilder::new(infos)
            .connection_timeout(wait)
            .response_timeout(wait)
            .build()
            .map_err(|e| unreachable(e.to_string()))?;
        let publisher = timeout(wait, client.get_async_connection())
            .await
            .map_err(|_| unreachable(format!("no answer within {wait:?}")))?
            .map_err(|e| unreachable(e.to_string()))?;
        Ok(RedisLayer::start(
            shared,
            Publisher::Cluster(publisher),
            |commands| cluster::subscriber::run(shards, pushes, commands),
        ))
    }

    /// A connected layer: its subscriber task (`subscriber`, given the
    /// layer's command queue) spawned.
    fn start<F>(
        shared: Arc<Shared>,
        publisher: Publisher,
        subscriber: impl FnOnce(mpsc::UnboundedReceiver<Command>) -> F,
    ) -> RedisLayer
    where
        F: Future<Output = ()> + Send + 'static,
    {
        // Up once everything is: a layer that failed to connect never said so.
        shared.set_connected(true);
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let subscriber = tokio::spawn(subscriber(commands_rx));
        RedisLayer {
            inner: Arc::new(Inner {
                shared,
                publisher,
                commands,
                subscriber,
            }),
        }
    }

    /// Whether the subscriptions are live right now: the subscription
    /// connection to Redis is up (on a cluster: every shard's connection
    /// that the layer needs).
    pub fn is_connected(&self) -> bool {
        self.inner.shared.connected.load(Ordering::Acquire)
    }

    fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    /// `PUBLISH topic payload` (`SPUBLISH` on a cluster), bounded by the
    /// operation timeout.
    async fn publish(
        &self,
        topic: Joined<'_>,
        payload: impl redis::ToRedisArgs,
    ) -> Result<(), LayerError> {
        // The connections time out first (and reconnect); this is a backstop
        // (on a cluster, also for its retries while a shard fails over).
        let wait = self.shared().config.operation_timeout + Duration::from_secs(1);
        let publisher = self.inner.publisher.clone();
        let published = timeout(wait, publisher.publish(topic, payload)).await;
        match published {
            Ok(Ok(_receivers)) => Ok(()),
            Ok(Err(e)) => Err(LayerError::Backend(Box::new(e))),
            Err(_) => Err(LayerError::Backend(
                format!("Redis did not answer within {wait:?}").into(),
            )),
        }
    }
}

/// A command argument made of three parts, written straight into the
/// command's buffer: a message is copied once, not first into a `String`.
struct Joined<'a>(&'a str, &'a str, &'a str);

impl fmt::Display for Joined<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)?;
        f.write_str(self.1)?;
        f.write_str(self.2)
    }
}

impl redis::ToRedisArgs for Joined<'_> {
    fn write_redis_args<W>(&self, out: &mut W)
    where
        W: ?Sized + redis::RedisWrite,
    {
        out.write_arg_fmt(self);
    }
}

/// A random id for this layer instance, valid in channel names.
fn instance_id() -> String {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    format!("r{:016x}", hasher.finish())
}

impl Shared {
    pub(crate) fn new(config: RedisLayerConfig) -> Arc<Shared> {
        let id = instance_id();
        Arc::new(Shared {
            process_topic: Joined(&config.prefix, ":p:", &id).to_string(),
            group_prefix: format!("{}:g:", config.prefix),
            local: LocalChannels::new(id)
                .with_max_groups_per_channel(config.max_groups_per_channel),
            config,
            connected: AtomicBool::new(false),
        })
    }

    /// Records whether the subscription connection is up, for
    /// [`RedisLayer::is_connected`] and the `chanmux_layer_up` gauge.
    pub(crate) fn set_connected(&self, up: bool) {
        self.connected.store(up, Ordering::Release);
        metrics::gauge!(chanmux_core::layer::LAYER_UP).set(if up { 1.0 } else { 0.0 });
    }

    /// Counts a message received from Redis but dropped before dispatch
    /// (the subscriber task fell behind).
    pub(crate) fn count_dropped(&self) {
        self.local.count_dropped();
    }

    fn local(&self) -> MutexGuard<'_, Registry> {
        self.local.registry()
    }

    pub(crate) fn group_topic(&self, group: &str) -> String {
        Joined(&self.group_prefix, "", group).to_string()
    }

    /// Every Redis channel this instance must be subscribed to now.
    pub(crate) fn topics(&self) -> Vec<String> {
        let local = self.local();
        std::iter::once(self.process_topic.clone())
            .chain(local.groups().map(|g| self.group_topic(g.as_str())))
            .collect()
    }

    /// Whether `topic` is still needed (a group with local members).
    pub(crate) fn wants(&self, topic: &str) -> bool {
        match topic.strip_prefix(&self.group_prefix) {
            Some(group) => self.local().has_group(group),
            None => topic == self.process_topic,
        }
    }

    /// Hands a message received from Redis to the local channels it is for:
    /// one lookup of the group's members, and the message parsed once for
    /// all of them (only if there is one).
    pub(crate) fn dispatch(&self, topic: &str, payload: &str) {
        if let Some(group) = topic.strip_prefix(&self.group_prefix) {
            // Looked up by &str: nothing is allocated before delivery.
            let Some(members) = self.local.group_members(group) else {
                return;
            };
            if let Some(message) = parse(topic, payload) {
                // Contained: a panicking Deliver must not take this task
                // (and every other recipient's messages) down with it.
                self.local.deliver_each(&members, &message);
            }
            return;
        }
        let Some((channel, text)) = payload.split_once(' ') else {
            tracing::warn!(topic, "malformed direct message from Redis; dropped");
            return;
        };
        if let Some(message) = parse(topic, text) {
            self.local.deliver_to_channel(channel, &message);
        }
    }
}

/// A message received from Redis; invalid ones are logged and dropped.
fn parse(topic: &str, text: &str) -> Option<Message> {
    Message::from_json(text)
        .inspect_err(|e| tracing::warn!(topic, error = %e, "invalid message from Redis; dropped"))
        .ok()
}

impl ChannelLayer for RedisLayer {
    fn new_channel(&self, delivery: Arc<dyn Deliver>) -> ChannelName {
        self.shared().local.open(delivery)
    }

    fn close_channel(&self, channel: &ChannelName) {
        let emptied = self.shared().local().remove(channel);
        for group in emptied {
            let topic = self.shared().group_topic(group.as_str());
            let _ = self.inner.commands.send(Command::Unsubscribe(topic));
        }
    }

    fn send<'a>(
        &'a self,
        channel: &'a ChannelName,
        message: Message,
    ) -> BoxFuture<'a, Result<(), LayerError>> {
        Box::pin(async move {
            // Channel names are `<instance id>.<n>`: publish to that instance.
            let instance = channel
                .as_str()
                .rsplit_once('.')
                .map_or(channel.as_str(), |(id, _)| id);
            let topic = Joined(&self.shared().config.prefix, ":p:", instance);
            let payload = Joined(channel.as_str(), " ", message.as_str());
            self.publish(topic, payload).await
        })
    }

    fn group_add<'a>(
        &'a self,
        group: &'a GroupName,
        channel: &'a ChannelName,
    ) -> BoxFuture<'a, Result<(), LayerError>> {
        Box::pin(async move {
            self.shared().local().add(group, channel)?;
            // Subscribing again is harmless, and waiting for it means a group
            // send made after this returns reaches the new member.
            let (ack, acked) = oneshot::channel();
            let topic = self.shared().group_topic(group.as_str());
            let _ = self.inner.commands.send(Command::Subscribe(topic, ack));
            let wait = self.shared().config.operation_timeout;
            match timeout(wait, acked).await {
                Ok(Ok(Ok(()))) => Ok(()),
                Ok(Ok(Err(e))) => Err(LayerError::Backend(e.into())),
                Ok(Err(_)) => Err(LayerError::Backend("the Redis subscriber stopped".into())),
                Err(_) => Err(LayerError::Backend(
                    format!("Redis did not answer within {wait:?}").into(),
                )),
            }
        })
    }

    fn group_discard<'a>(
        &'a self,
        group: &'a GroupName,
        channel: &'a ChannelName,
    ) -> BoxFuture<'a, Result<(), LayerError>> {
        let emptied = self.shared().local().discard(group, channel);
        if emptied {
            let _ = self.inner.commands.send(Command::Unsubscribe(
                self.shared().group_topic(group.as_str()),
            ));
        }
        Box::pin(async { Ok(()) })
    }

    fn group_send<'a>(
        &'a self,
        group: &'a GroupName,
        message: Message,
    ) -> BoxFuture<'a, Result<(), LayerError>> {
        Box::pin(async move {
            let topic = Joined(&self.shared().group_prefix, "", group.as_str());
            self.publish(topic, message.as_str()).await
        })
    }

    fn stats(&self) -> LayerStats {
        self.shared().local.stats()
    }

    fn is_up(&self) -> bool {
        self.is_connected()
    }
}

impl fmt::Debug for RedisLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisLayer")
            .field("id", &self.shared().local.prefix())
            .field(
                "cluster",
                &matches!(self.inner.publisher, Publisher::Cluster(_)),
            )
            .field("connected", &self.is_connected())
            .field("stats", &self.stats())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::RedisServer;

    /// The interleaving behind a review finding: a member's subscription
    /// request reaching the subscriber after its last member has already
    /// left (group_add racing close_channel) must not subscribe.
    #[tokio::test]
    async fn a_subscription_request_for_a_group_without_members_subscribes_nothing() {
        let server = RedisServer::start().await;
        let layer = RedisLayer::connect(&server.url()).await.unwrap();
        let topic = layer.shared().group_topic("nobody-here");
        let (ack, acked) = oneshot::channel();
        layer
            .inner
            .commands
            .send(Command::Subscribe(topic, ack))
            .unwrap();
        acked.await.unwrap().unwrap();
        // A wanted group on the same connection, as a barrier.
        let group = GroupName::new("somebody").unwrap();
        let (tx, _rx) = tokio::sync::mpsc::channel(1);
        struct Sink(tokio::sync::mpsc::Sender<Message>);
        impl Deliver for Sink {
            fn deliver(&self, message: &Message) -> bool {
                self.0.try_send(message.clone()).is_ok()
            }
        }
        let channel = layer.new_channel(Arc::new(Sink(tx)));
        layer.group_add(&group, &channel).await.unwrap();
        assert_eq!(
            server.subscribed_channels("chanmux:g:*").await,
            ["chanmux:g:somebody"]
        );
    }
}
