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

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::{ChannelName, GroupName, Message};

/// A boxed future, so layers can be used as trait objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A boxed error from a backend.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Where a layer hands the messages of one local channel.
pub trait Deliver: Send + Sync + 'static {
    /// Hands `message` over without waiting. `false` means it was dropped:
    /// the channel is full or its consumer is gone.
    fn deliver(&self, message: Message) -> bool;
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
}

/// A shared layer, as consumers and servers hold it.
pub type SharedLayer = Arc<dyn ChannelLayer>;
