//! [`Shutdown`]: close every connection with 1001 and wait until they are gone.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{Notify, watch};

/// A shutdown switch shared by a server and its connections.
///
/// Put it in [`ConnectionConfig::shutdown`](crate::ConnectionConfig); then
/// [`trigger`](Shutdown::trigger) closes every connection with 1001 (going
/// away) and [`drained`](Shutdown::drained) waits until all have finished.
#[derive(Clone)]
pub struct Shutdown {
    inner: Arc<Inner>,
}

struct Inner {
    triggered: watch::Sender<bool>,
    live: AtomicUsize,
    idle: Notify,
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown::new()
    }
}

impl Shutdown {
    /// A switch that has not been triggered.
    pub fn new() -> Self {
        Shutdown {
            inner: Arc::new(Inner {
                triggered: watch::Sender::new(false),
                live: AtomicUsize::new(0),
                idle: Notify::new(),
            }),
        }
    }

    /// Asks every connection to close with 1001.
    pub fn trigger(&self) {
        self.inner.triggered.send_replace(true);
    }

    /// Whether [`trigger`](Shutdown::trigger) was called.
    pub fn is_triggered(&self) -> bool {
        *self.inner.triggered.borrow()
    }

    /// Connections still running.
    pub fn live_connections(&self) -> usize {
        self.inner.live.load(Ordering::Acquire)
    }

    /// Waits until no connection is running.
    pub async fn drained(&self) {
        loop {
            let idle = self.inner.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if self.live_connections() == 0 {
                return;
            }
            idle.await;
        }
    }

    /// Counts a connection as live until the returned guard drops.
    pub(crate) fn register(&self) -> Registration {
        self.inner.live.fetch_add(1, Ordering::AcqRel);
        Registration {
            triggered: self.inner.triggered.subscribe(),
            shutdown: self.clone(),
        }
    }
}

/// One live connection's view of the switch.
pub(crate) struct Registration {
    triggered: watch::Receiver<bool>,
    shutdown: Shutdown,
}

impl Registration {
    /// Resolves once shutdown is triggered.
    pub(crate) async fn triggered(&mut self) {
        // An error means the switch was dropped; then it can never trigger.
        if self.triggered.wait_for(|t| *t).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if self.shutdown.inner.live.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shutdown.inner.idle.notify_waiters();
        }
    }
}

impl fmt::Debug for Shutdown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shutdown")
            .field("triggered", &self.is_triggered())
            .field("live_connections", &self.live_connections())
            .finish()
    }
}
