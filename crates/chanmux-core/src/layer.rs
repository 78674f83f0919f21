//! [`ChannelLayer`]: the surface every group backend implements.
//!
//! A layer moves [`Message`]s between consumer instances: to one channel
//! ([`send`](ChannelLayer::send)) or to every channel in a group
//! ([`group_send`](ChannelLayer::group_send)), within one process (the
//! in-memory layer) or across processes and machines (Redis).
//!
//! # Delivery guarantees
//!
//! At most once. A message reaches each recipient once or not at all: it is
//! dropped when the recipient's channel is full (counted in
//! [`LayerStats::dropped`]) or gone, and, for backends over a network, while
//! the backend is unreachable. Messages from one sender to one channel or
//! group arrive in the order they were sent. Membership lasts as long as the
//! channel (the consumer instance) does: it is removed when the consumer ends,
//! however it ends, so there is nothing to expire.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::{ChannelName, GroupName, Message};

/// A boxed future, so layers can be used as trait objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A boxed error from a backend.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Where a layer hands the messages of one local channel.
pub trait Deliver: Send + Sync + 'static {
    /// Hands `message` over without waiting, cloning what it keeps (a
    /// reference count). `false` means it was dropped: the channel is full
    /// or its consumer is gone.
    ///
    /// Called once per recipient of a group send, on the sender's thread
    /// (or the backend's receiving task), so it must be quick.
    fn deliver(&self, message: &Message) -> bool;
}

/// A channel layer backend: channels, groups and message delivery.
pub trait ChannelLayer: Send + Sync + 'static {
    /// Registers a local channel whose messages go to `delivery`, and
    /// returns its name, unique across every layer sharing the backend.
    fn new_channel(&self, delivery: Arc<dyn Deliver>) -> ChannelName;

    /// Forgets a local channel and removes it from every group. Called when
    /// its consumer ends, so it must not wait.
    fn close_channel(&self, channel: &ChannelName);

    /// Sends `message` to one channel, local or not.
    fn send<'a>(
        &'a self,
        channel: &'a ChannelName,
        message: Message,
    ) -> BoxFuture<'a, Result<(), LayerError>>;

    /// Adds a local channel to `group`. Once this returns, group sends from
    /// anywhere reach it.
    fn group_add<'a>(
        &'a self,
        group: &'a GroupName,
        channel: &'a ChannelName,
    ) -> BoxFuture<'a, Result<(), LayerError>>;

    /// Removes a channel from `group`; removing a non-member is not an error.
    fn group_discard<'a>(
        &'a self,
        group: &'a GroupName,
        channel: &'a ChannelName,
    ) -> BoxFuture<'a, Result<(), LayerError>>;

    /// Sends `message` to every member of `group`, wherever it is. Sending to
    /// an empty group is not an error.
    fn group_send<'a>(
        &'a self,
        group: &'a GroupName,
        message: Message,
    ) -> BoxFuture<'a, Result<(), LayerError>>;

    /// What this layer instance holds locally.
    fn stats(&self) -> LayerStats;

    /// Whether the backend is reachable now (for readiness probes); a layer
    /// in this process always is. Backends that can lose theirs also set the
    /// [`LAYER_UP`] gauge when it changes.
    fn is_up(&self) -> bool {
        true
    }
}

/// Counts of what a layer instance holds, for monitoring and leak checks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LayerStats {
    /// Local channels registered.
    pub channels: usize,
    /// Groups with at least one local member.
    pub groups: usize,
    /// (group, local channel) memberships.
    pub memberships: usize,
    /// Messages dropped because a local channel was full or gone.
    pub dropped: u64,
}

impl LayerStats {
    /// Builds stats (the struct is non-exhaustive).
    pub fn new(channels: usize, groups: usize, memberships: usize, dropped: u64) -> Self {
        LayerStats {
            channels,
            groups,
            memberships,
            dropped,
        }
    }
}

/// Why a layer operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LayerError {
    /// `group_add` named a channel that is not registered on this layer instance.
    #[error("channel {0} is not a local channel of this layer")]
    UnknownChannel(ChannelName),
    /// The backend could not be reached or refused the operation; what was
    /// being sent is lost. Retrying later may succeed.
    #[error("channel layer backend failed: {0}")]
    Backend(#[source] BoxError),
    /// The channel is already in as many groups as the layer allows
    /// ([`DEFAULT_MAX_GROUPS_PER_CHANNEL`] unless configured).
    #[error("a channel may be in at most {limit} groups")]
    TooManyGroups {
        /// The layer's limit.
        limit: usize,
    },
}

/// How many groups one channel (one consumer) may be in, unless the layer
/// is configured otherwise: bounds what one client can make the server hold.
pub const DEFAULT_MAX_GROUPS_PER_CHANNEL: usize = 1_000;

/// A shared layer, as consumers and servers hold it.
pub type SharedLayer = Arc<dyn ChannelLayer>;

/// A channel layer given by value or already shared: what
/// `DemultiplexerBuilder::channel_layer` takes (`InMemoryLayer::new()`,
/// `Arc::new(layer)` or a [`SharedLayer`]).
pub trait IntoSharedLayer {
    /// The layer, shared.
    fn into_shared_layer(self) -> SharedLayer;
}

impl<L: ChannelLayer> IntoSharedLayer for L {
    fn into_shared_layer(self) -> SharedLayer {
        Arc::new(self)
    }
}

impl<L: ChannelLayer> IntoSharedLayer for Arc<L> {
    fn into_shared_layer(self) -> SharedLayer {
        self
    }
}

impl IntoSharedLayer for SharedLayer {
    fn into_shared_layer(self) -> SharedLayer {
        self
    }
}

/// A layer instance's local channels and their group memberships: the
/// bookkeeping every backend keeps (behind its own lock).
pub struct Registry {
    channels: HashMap<ChannelName, Entry>,
    groups: HashMap<GroupName, Members>,
    max_groups_per_channel: usize,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            channels: Default::default(),
            groups: Default::default(),
            max_groups_per_channel: DEFAULT_MAX_GROUPS_PER_CHANNEL,
        }
    }
}

struct Entry {
    delivery: Arc<dyn Deliver>,
    groups: HashSet<GroupName>,
}

/// A group's local members, kept as the list a send walks: a send takes
/// the list (one reference count) and delivers outside the lock, with no
/// lookup or allocation per member.
#[derive(Default)]
struct Members {
    list: Arc<Vec<Member>>,
    /// Where each member sits in `list`, for removal in constant time (a
    /// join or leave while a send still walks the list copies it once).
    index: HashMap<ChannelName, usize>,
}

#[derive(Clone)]
struct Member {
    channel: ChannelName,
    delivery: Arc<dyn Deliver>,
}

impl Members {
    fn insert(&mut self, channel: &ChannelName, delivery: &Arc<dyn Deliver>) {
        if self.index.contains_key(channel) {
            return;
        }
        // In place unless a send still walks the list; then it keeps the old one.
        let list = Arc::make_mut(&mut self.list);
        self.index.insert(channel.clone(), list.len());
        list.push(Member {
            channel: channel.clone(),
            delivery: delivery.clone(),
        });
    }

    fn remove(&mut self, channel: &ChannelName) {
        let Some(at) = self.index.remove(channel) else {
            return;
        };
        let list = Arc::make_mut(&mut self.list);
        list.swap_remove(at);
        if let Some(moved) = list.get(at) {
            self.index.insert(moved.channel.clone(), at);
        }
    }
}

/// The local members of a group as a send found them: cheap to hold, and
/// unchanged by later joins and leaves.
#[derive(Clone)]
pub struct GroupMembers(Arc<Vec<Member>>);

impl GroupMembers {
    /// How many members.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn deliveries(&self) -> impl Iterator<Item = &dyn Deliver> {
        self.0.iter().map(|member| &*member.delivery)
    }
}

impl std::fmt::Debug for GroupMembers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupMembers")
            .field("len", &self.len())
            .finish()
    }
}

impl Registry {
    /// Registers a local channel.
    pub fn insert(&mut self, channel: ChannelName, delivery: Arc<dyn Deliver>) {
        let entry = Entry {
            delivery,
            groups: Default::default(),
        };
        self.channels.insert(channel, entry);
    }

    /// Forgets a channel and its memberships; returns the groups left
    /// without any local member.
    pub fn remove(&mut self, channel: &ChannelName) -> Vec<GroupName> {
        let Some(entry) = self.channels.remove(channel) else {
            return Vec::new();
        };
        entry
            .groups
            .into_iter()
            .filter(|group| self.leave(group, channel))
            .collect()
    }

    /// Adds a local channel to `group`.
    ///
    /// # Errors
    ///
    /// [`LayerError::UnknownChannel`] when `channel` is not registered;
    /// [`LayerError::TooManyGroups`] when it is already in the most groups
    /// allowed (joining a group it is in is never refused).
    pub fn add(&mut self, group: &GroupName, channel: &ChannelName) -> Result<(), LayerError> {
        let entry = self
            .channels
            .get_mut(channel)
            .ok_or_else(|| LayerError::UnknownChannel(channel.clone()))?;
        if entry.groups.len() >= self.max_groups_per_channel && !entry.groups.contains(group) {
            return Err(LayerError::TooManyGroups {
                limit: self.max_groups_per_channel,
            });
        }
        entry.groups.insert(group.clone());
        self.groups
            .entry(group.clone())
            .or_default()
            .insert(channel, &entry.delivery);
        Ok(())
    }

    /// Removes `channel` from `group`; returns whether the group is now
    /// without local members (and was not before).
    pub fn discard(&mut self, group: &GroupName, channel: &ChannelName) -> bool {
        if let Some(entry) = self.channels.get_mut(channel) {
            entry.groups.remove(group);
        }
        self.leave(group, channel)
    }

    /// Drops the membership; `true` if that emptied the group.
    fn leave(&mut self, group: &GroupName, channel: &ChannelName) -> bool {
        let Some(members) = self.groups.get_mut(group) else {
            return false;
        };
        members.remove(channel);
        let emptied = members.index.is_empty();
        if emptied {
            self.groups.remove(group);
        }
        emptied
    }

    /// Where a local channel's messages go (looked up by name, no [`ChannelName`] needed).
    pub fn delivery(&self, channel: &str) -> Option<Arc<dyn Deliver>> {
        self.channels
            .get(channel)
            .map(|entry| entry.delivery.clone())
    }

    /// The local members of `group`, if it has any: one lookup, and a
    /// reference count rather than a copy.
    pub fn members(&self, group: &str) -> Option<GroupMembers> {
        self.groups
            .get(group)
            .map(|members| GroupMembers(members.list.clone()))
    }

    /// Whether `group` has a local member.
    pub fn has_group(&self, group: &str) -> bool {
        self.groups.contains_key(group)
    }

    /// The groups with local members.
    pub fn groups(&self) -> impl Iterator<Item = &GroupName> {
        self.groups.keys()
    }

    /// Channels, groups and memberships, for [`LayerStats`].
    pub fn stats(&self, dropped: u64) -> LayerStats {
        let memberships = self.groups.values().map(|m| m.index.len()).sum();
        LayerStats::new(self.channels.len(), self.groups.len(), memberships, dropped)
    }
}

/// Metric: messages handed to local channels (group members and direct
/// sends), by `result` (`delivered`, `dropped`); a counter.
pub const GROUP_MESSAGES: &str = "chanmux_group_messages_total";

/// Metric: 1 while the layer's backend is reachable, else 0; a gauge set to
/// 1 when a layer is built, and by backends that can lose theirs at each
/// change (see [`ChannelLayer::is_up`]). One gauge per process: a process
/// runs one layer.
pub const LAYER_UP: &str = "chanmux_layer_up";

/// The delivered and dropped counters, looked up once per process (install
/// the metrics recorder before the first message).
fn group_message_counters() -> &'static (metrics::Counter, metrics::Counter) {
    static COUNTERS: std::sync::OnceLock<(metrics::Counter, metrics::Counter)> =
        std::sync::OnceLock::new();
    COUNTERS.get_or_init(|| {
        (
            metrics::counter!(GROUP_MESSAGES, "result" => "delivered"),
            metrics::counter!(GROUP_MESSAGES, "result" => "dropped"),
        )
    })
}

/// What every backend keeps of its own instance: the local channels (named
/// `<prefix>.<n>`) and their memberships, and how many messages could not
/// be handed over. Deliveries run outside the lock, each contained.
pub struct LocalChannels {
    prefix: String,
    next: AtomicU64,
    registry: Mutex<Registry>,
    dropped: AtomicU64,
}

impl LocalChannels {
    /// Empty; channel names will start with `prefix` (valid in a channel
    /// name, unique to this layer instance).
    pub fn new(prefix: impl Into<String>) -> Self {
        LocalChannels {
            prefix: prefix.into(),
            next: AtomicU64::new(0),
            registry: Mutex::new(Registry::default()),
            dropped: AtomicU64::new(0),
        }
    }

    /// Sets how many groups one channel may be in (default
    /// [`DEFAULT_MAX_GROUPS_PER_CHANNEL`]; 0 means no limit).
    #[must_use]
    pub fn with_max_groups_per_channel(self, limit: usize) -> Self {
        self.registry().max_groups_per_channel = if limit == 0 { usize::MAX } else { limit };
        self
    }

    /// The start of this instance's channel names.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The channels and memberships, locked. Hold it only for map work.
    pub fn registry(&self) -> MutexGuard<'_, Registry> {
        // Only map operations run under this lock; nothing in it panics.
        self.registry.lock().expect("layer registry lock poisoned")
    }

    /// Registers a new local channel with a fresh name.
    pub fn open(&self, delivery: Arc<dyn Deliver>) -> ChannelName {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let name = ChannelName::new(&format!("{}.{n}", self.prefix))
            .expect("generated channel names are valid");
        self.registry().insert(name.clone(), delivery);
        name
    }

    /// Hands `message` to local channel `channel`; a missing channel or a
    /// refused delivery counts as dropped.
    pub fn deliver_to_channel(&self, channel: &str, message: &Message) {
        let delivery = self.registry().delivery(channel);
        match delivery {
            Some(delivery) => {
                let delivered = deliver_contained(&*delivery, message);
                self.count(usize::from(delivered), usize::from(!delivered));
            }
            None => self.count_dropped(),
        }
    }

    /// The local members of `group`, if any (see [`Registry::members`]).
    pub fn group_members(&self, group: &str) -> Option<GroupMembers> {
        self.registry().members(group)
    }

    /// Hands `message` to every local member of `group`.
    pub fn deliver_to_group(&self, group: &str, message: &Message) {
        if let Some(members) = self.group_members(group) {
            self.deliver_each(&members, message);
        }
    }

    /// Hands `message` to each member (outside the lock), counting those
    /// that refuse or panic as dropped.
    pub fn deliver_each(&self, members: &GroupMembers, message: &Message) {
        let mut dropped = 0;
        for delivery in members.deliveries() {
            if !deliver_contained(delivery, message) {
                dropped += 1;
            }
        }
        self.count(members.len() - dropped, dropped);
    }

    /// Counted once per message, not per member: a fan-out to thousands
    /// adds to each counter once.
    fn count(&self, delivered: usize, dropped: usize) {
        let (delivered_metric, dropped_metric) = group_message_counters();
        delivered_metric.increment(delivered as u64);
        if dropped > 0 {
            self.dropped.fetch_add(dropped as u64, Ordering::Relaxed);
            dropped_metric.increment(dropped as u64);
        }
    }

    /// A message that found nobody to take it.
    pub fn count_dropped(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
        group_message_counters().1.increment(1);
    }

    /// Channels, groups, memberships and dropped messages.
    pub fn stats(&self) -> LayerStats {
        self.registry().stats(self.dropped.load(Ordering::Relaxed))
    }
}

impl std::fmt::Debug for LocalChannels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalChannels")
            .field("prefix", &self.prefix)
            .field("stats", &self.stats())
            .finish()
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("channels", &self.channels.len())
            .field("groups", &self.groups.len())
            .finish()
    }
}

/// Hands `message` to `delivery`, containing a panicking [`Deliver`]: `true`
/// if it was taken, `false` if it was dropped (full, gone or panicked).
fn deliver_contained(delivery: &dyn Deliver, message: &Message) -> bool {
    let delivered =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| delivery.deliver(message)));
    matches!(delivered, Ok(true))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Nowhere;

    impl Deliver for Nowhere {
        fn deliver(&self, _message: &Message) -> bool {
            false
        }
    }

    struct Panics;

    impl Deliver for Panics {
        fn deliver(&self, _message: &Message) -> bool {
            panic!("a broken delivery")
        }
    }

    #[test]
    fn the_registry_tracks_memberships_and_reports_emptied_groups() {
        let (a, b) = (
            ChannelName::new("x.1").unwrap(),
            ChannelName::new("x.2").unwrap(),
        );
        let (g, h) = (GroupName::new("g").unwrap(), GroupName::new("h").unwrap());
        let mut registry = Registry::default();
        assert!(matches!(
            registry.add(&g, &a),
            Err(LayerError::UnknownChannel(_))
        ));
        registry.insert(a.clone(), Arc::new(Nowhere));
        registry.insert(b.clone(), Arc::new(Nowhere));
        registry.add(&g, &a).unwrap();
        registry.add(&g, &b).unwrap();
        registry.add(&h, &a).unwrap();
        assert_eq!(registry.stats(0), LayerStats::new(2, 2, 3, 0));
        assert_eq!(registry.members("g").map(|m| m.len()), Some(2));
        assert!(!registry.discard(&g, &b), "g still has a");
        assert_eq!(
            registry.remove(&a).len(),
            2,
            "a was the last member of g and h"
        );
        assert!(!registry.has_group("g") && !registry.has_group("h"));
        assert_eq!(registry.stats(0), LayerStats::new(1, 0, 0, 0));
        assert!(
            !registry.discard(&g, &b),
            "discarding a non-member is a no-op"
        );
    }

    /// Counts what it is handed, to tell members apart.
    struct Counts(std::sync::atomic::AtomicUsize);

    impl Deliver for Counts {
        fn deliver(&self, _message: &Message) -> bool {
            self.0.fetch_add(1, Ordering::Relaxed);
            true
        }
    }

    #[test]
    fn members_leave_from_anywhere_in_the_list_and_the_rest_still_get_messages() {
        let local = LocalChannels::new("x");
        let group = GroupName::new("g").unwrap();
        let counts: Vec<Arc<Counts>> = (0..4)
            .map(|_| Arc::new(Counts(Default::default())))
            .collect();
        let names: Vec<ChannelName> = counts
            .iter()
            .map(|c| {
                let name = local.open(c.clone());
                local.registry().add(&group, &name).unwrap();
                name
            })
            .collect();
        // The first leaves (the last takes its place), then the one moved.
        local.registry().discard(&group, &names[0]);
        local.registry().discard(&group, &names[3]);
        let message = Message::new(&serde_json::json!({"type": "t"})).unwrap();
        local.deliver_to_group("g", &message);
        let got: Vec<usize> = counts.iter().map(|c| c.0.load(Ordering::Relaxed)).collect();
        assert_eq!(got, [0, 1, 1, 0]);
        assert_eq!(local.stats().memberships, 2);
        // A send holding the list keeps it whole while a member leaves.
        let held = local.group_members("g").unwrap();
        local.registry().discard(&group, &names[1]);
        assert_eq!(
            (held.len(), local.group_members("g").unwrap().len()),
            (2, 1)
        );
    }

    #[test]
    fn a_panicking_or_refused_delivery_is_contained_and_reported_undelivered() {
        let message = Message::new(&serde_json::json!({"type": "t"})).unwrap();
        assert!(!deliver_contained(&Panics, &message));
        assert!(!deliver_contained(&Nowhere, &message));
    }
}
