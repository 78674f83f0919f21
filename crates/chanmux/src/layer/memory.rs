//! [`InMemoryLayer`]: groups within one process, with nothing external.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chanmux_core::layer::{Registry, deliver_contained};

use super::{
    BoxFuture, ChannelLayer, ChannelName, Deliver, GroupName, LayerError, LayerStats, Message,
};

/// A channel layer for one process: the default, with nothing external.
///
/// Clones share the same channels and groups. A group send looks up the
/// members under a lock, then hands each the same [`Message`] (a
/// reference-count bump, no copy) outside it.
#[derive(Clone)]
pub struct InMemoryLayer {
    inner: Arc<Inner>,
}

struct Inner {
    /// Makes channel names unique across layer instances in a process.
    prefix: String,
    next_channel: AtomicU64,
    dropped: AtomicU64,
    registry: Mutex<Registry>,
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
        InMemoryLayer {
            inner: Arc::new(Inner {
                prefix: format!("memory{}", NEXT_LAYER.fetch_add(1, Ordering::Relaxed)),
                next_channel: AtomicU64::new(0),
                dropped: AtomicU64::new(0),
                registry: Mutex::new(Registry::default()),
            }),
        }
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        // No code panics while holding this lock (only map operations).
        self.inner
            .registry
            .lock()
            .expect("layer registry lock poisoned")
    }

    /// Hands over a message outside the lock; a dropped one is counted.
    fn deliver(&self, delivery: &dyn Deliver, message: Message) {
        if !deliver_contained(delivery, message) {
            self.inner.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl ChannelLayer for InMemoryLayer {
    fn new_channel(&self, delivery: Arc<dyn Deliver>) -> ChannelName {
        let n = self.inner.next_channel.fetch_add(1, Ordering::Relaxed);
        let name = ChannelName::new(&format!("{}.{n}", self.inner.prefix))
            .expect("generated channel names are valid");
        self.registry().insert(name.clone(), delivery);
        name
    }

    fn close_channel(&self, channel: &ChannelName) {
        self.registry().remove(channel);
    }

    fn send<'a>(
        &'a self,
        channel: &'a ChannelName,
        message: Message,
    ) -> BoxFuture<'a, Result<(), LayerError>> {
        let delivery = self.registry().delivery(channel.as_str());
        match delivery {
            Some(delivery) => self.deliver(&*delivery, message),
            // Nobody there: the message is dropped, as at-most-once allows.
            None => {
                self.inner.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        Box::pin(async { Ok(()) })
    }

    fn group_add<'a>(
        &'a self,
        group: &'a GroupName,
        channel: &'a ChannelName,
    ) -> BoxFuture<'a, Result<(), LayerError>> {
        let added = self.registry().add(group, channel);
        Box::pin(async move { added })
    }

    fn group_discard<'a>(
        &'a self,
        group: &'a GroupName,
        channel: &'a ChannelName,
    ) -> BoxFuture<'a, Result<(), LayerError>> {
        self.registry().discard(group, channel);
        Box::pin(async { Ok(()) })
    }

    fn group_send<'a>(
        &'a self,
        group: &'a GroupName,
        message: Message,
    ) -> BoxFuture<'a, Result<(), LayerError>> {
        let members = self.registry().members(group.as_str());
        for delivery in members {
            self.deliver(&*delivery, message.clone());
        }
        Box::pin(async { Ok(()) })
    }

    fn stats(&self) -> LayerStats {
        self.registry()
            .stats(self.inner.dropped.load(Ordering::Relaxed))
    }
}

impl fmt::Debug for InMemoryLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryLayer")
            .field("prefix", &self.inner.prefix)
            .field("stats", &self.stats())
            .finish()
    }
}
