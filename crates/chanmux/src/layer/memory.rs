//! [`InMemoryLayer`]: groups within one process, with nothing external.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chanmux_core::layer::LocalChannels;

use super::{
    BoxFuture, ChannelLayer, ChannelName, Deliver, GroupName, LayerError, LayerStats, Message,
};

/// A channel layer for one process: the default, with nothing external.
///
/// Clones share the same channels and groups. A group send takes the
/// group's member list under a lock (one lookup, a reference count), then
/// hands each member the same [`Message`] (a reference-count bump, no copy)
/// outside it.
#[derive(Clone)]
pub struct InMemoryLayer {
    local: Arc<LocalChannels>,
}

static NEXT_LAYER: AtomicU64 = AtomicU64::new(0);

impl Default for InMemoryLayer {
    fn default() -> Self {
        InMemoryLayer::new()
    }
}

impl InMemoryLayer {
    /// An empty layer.
    pub fn new() -> Self {
        InMemoryLayer::with_max_groups_per_channel(chanmux_core::DEFAULT_MAX_GROUPS_PER_CHANNEL)
    }

    /// An empty layer where one channel (one consumer) may be in at most
    /// `limit` groups (default 1,000; 0 means no limit): `group_add` beyond
    /// it fails with [`LayerError::TooManyGroups`].
    pub fn with_max_groups_per_channel(limit: usize) -> Self {
        // The prefix makes channel names unique across layers in a process.
        let prefix = format!("memory{}", NEXT_LAYER.fetch_add(1, Ordering::Relaxed));
        let local = LocalChannels::new(prefix).with_max_groups_per_channel(limit);
        // Nothing here can become unreachable.
        metrics::gauge!(chanmux_core::layer::LAYER_UP).set(1.0);
        InMemoryLayer {
            local: Arc::new(local),
        }
    }
}

impl ChannelLayer for InMemoryLayer {
    fn new_channel(&self, delivery: Arc<dyn Deliver>) -> ChannelName {
        self.local.open(delivery)
    }

    fn close_channel(&self, channel: &ChannelName) {
        self.local.registry().remove(channel);
    }

    fn send<'a>(
        &'a self,
        channel: &'a ChannelName,
        message: Message,
    ) -> BoxFuture<'a, Result<(), LayerError>> {
        // Nobody there: the message is dropped, as at-most-once allows.
        self.local.deliver_to_channel(channel.as_str(), &message);
        Box::pin(async { Ok(()) })
    }

    fn group_add<'a>(
        &'a self,
        group: &'a GroupName,
        channel: &'a ChannelName,
    ) -> BoxFuture<'a, Result<(), LayerError>> {
        let added = self.local.registry().add(group, channel);
        Box::pin(async move { added })
    }

    fn group_discard<'a>(
        &'a self,
        group: &'a GroupName,
        channel: &'a ChannelName,
    ) -> BoxFuture<'a, Result<(), LayerError>> {
        self.local.registry().discard(group, channel);
        Box::pin(async { Ok(()) })
    }

    fn group_send<'a>(
        &'a self,
        group: &'a GroupName,
        message: Message,
    ) -> BoxFuture<'a, Result<(), LayerError>> {
        self.local.deliver_to_group(group.as_str(), &message);
        Box::pin(async { Ok(()) })
    }

    fn stats(&self) -> LayerStats {
        self.local.stats()
    }
}

impl fmt::Debug for InMemoryLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryLayer")
            .field("local", &self.local)
            .finish()
    }
}
