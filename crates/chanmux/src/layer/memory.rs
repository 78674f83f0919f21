//! [`InMemoryLayer`]: groups within one process, with nothing external.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

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
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    channels: HashMap<ChannelName, Channel>,
    groups: HashMap<GroupName, HashSet<ChannelName>>,
}

struct Channel {
    delivery: Arc<dyn Deliver>,
    groups: HashSet<GroupName>,
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
                state: Mutex::new(State::default()),
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // No code panics while holding this lock (only map operations).
        self.inner.state.lock().expect("layer state lock poisoned")
    }

    fn deliver(&self, delivery: &dyn Deliver, message: Message) {
        // A panicking Deliver costs its own message, not the sender's task.
        let delivered =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| delivery.deliver(message)));
        if !matches!(delivered, Ok(true)) {
            self.inner.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl ChannelLayer for InMemoryLayer {
    fn new_channel(&self, delivery: Arc<dyn Deliver>) -> ChannelName {
        let n = self.inner.next_channel.fetch_add(1, Ordering::Relaxed);
        let name = ChannelName::new(&format!("{}.{n}", self.inner.prefix))
            .expect("generated channel names are valid");
        self.state().channels.insert(
            name.clone(),
            Channel {
                delivery,
                groups: HashSet::new(),
            },
        );
        name
    }

    fn close_channel(&self, channel: &ChannelName) {
        let mut state = self.state();
        let Some(closed) = state.channels.remove(channel) else {
            return;
        };
        for group in closed.groups {
            if let Some(members) = state.groups.get_mut(&group) {
                members.remove(channel);
                if members.is_empty() {
                    state.groups.remove(&group);
                }
            }
        }
    }

    fn send<'a>(
        &'a self,
        channel: &'a ChannelName,
        message: Message,
    ) -> BoxFuture<'a, Result<(), LayerError>> {
        let delivery = self
            .state()
            .channels
            .get(channel)
            .map(|c| c.delivery.clone());
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
        let added = {
            let mut state = self.state();
            match state.channels.get_mut(channel) {
                Some(local) => {
                    local.groups.insert(group.clone());
                    state
                        .groups
                        .entry(group.clone())
                        .or_default()
                        .insert(channel.clone());
                    Ok(())
                }
                None => Err(LayerError::UnknownChannel(channel.clone())),
            }
        };
        Box::pin(async move { added })
    }

    fn group_discard<'a>(
        &'a self,
        group: &'a GroupName,
        channel: &'a ChannelName,
    ) -> BoxFuture<'a, Result<(), LayerError>> {
        {
            let mut state = self.state();
            if let Some(local) = state.channels.get_mut(channel) {
                local.groups.remove(group);
            }
            if let Some(members) = state.groups.get_mut(group) {
                members.remove(channel);
                if members.is_empty() {
                    state.groups.remove(group);
                }
            }
        }
        Box::pin(async { Ok(()) })
    }

    fn group_send<'a>(
        &'a self,
        group: &'a GroupName,
        message: Message,
    ) -> BoxFuture<'a, Result<(), LayerError>> {
        let deliveries: Vec<Arc<dyn Deliver>> = {
            let state = self.state();
            state
                .groups
                .get(group)
                .map(|members| {
                    members
                        .iter()
                        .filter_map(|name| state.channels.get(name).map(|c| c.delivery.clone()))
                        .collect()
                })
                .unwrap_or_default()
        };
        for delivery in deliveries {
            self.deliver(&*delivery, message.clone());
        }
        Box::pin(async { Ok(()) })
    }

    fn stats(&self) -> LayerStats {
        let state = self.state();
        LayerStats::new(
            state.channels.len(),
            state.groups.len(),
            state.groups.values().map(HashSet::len).sum(),
            self.inner.dropped.load(Ordering::Relaxed),
        )
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
