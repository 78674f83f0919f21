//! [`Shutdown`]: close every connection with 1001, all at once or spread over
//! a drain time, and wait until they are gone.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::time::{Instant, sleep_until};

/// A shutdown switch shared by a server and its connections.
///
/// Put it in [`ConnectionConfig::shutdown`](crate::ConnectionConfig) (the
/// axum [`serve`](crate::axum::serve) loop does that for the routes it
/// serves); then [`drain`](Shutdown::drain) closes every connection with
/// 1001 (going away), spread evenly over a drain time so that clients do not
/// all reconnect in the same instant, [`trigger`](Shutdown::trigger) closes
/// the rest at once, and [`drained`](Shutdown::drained) waits until all have
/// finished. From the first call on, new connections are refused with HTTP
/// 503.
#[derive(Clone)]
pub struct Shutdown {
    inner: Arc<Inner>,
}

struct Inner {
    /// `None` until shutdown starts.
    plan: watch::Sender<Option<Plan>>,
    live: AtomicUsize,
    /// Hands each connection its place in a drain.
    registered: AtomicU64,
    idle: Notify,
}

/// When connections close: each at `start` plus its own fraction of `over`.
#[derive(Debug, Clone, Copy)]
struct Plan {
    start: Instant,
    over: Duration,
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
                plan: watch::Sender::new(None),
                live: AtomicUsize::new(0),
                registered: AtomicU64::new(0),
                idle: Notify::new(),
            }),
        }
    }

    /// Closes every connection with 1001 at once (also those a
    /// [`drain`](Shutdown::drain) has not reached yet).
    pub fn trigger(&self) {
        self.start(Duration::ZERO);
    }

    /// Closes every connection with 1001, spread evenly over `over`: each
    /// connection gets its own moment within it, so the closes (and the
    /// clients' reconnects) do not all come at once. Calling it again (or
    /// [`trigger`](Shutdown::trigger)) re-plans what has not closed yet
    /// over the new, shorter time; a longer one is ignored.
    pub fn drain(&self, over: Duration) {
        self.start(over);
    }

    fn start(&self, over: Duration) {
        let now = Instant::now();
        self.inner.plan.send_if_modified(|plan| {
            // Never later than a plan already running.
            let ends = now + over;
            match plan {
                Some(running) if running.start + running.over <= ends => false,
                _ => {
                    *plan = Some(Plan { start: now, over });
                    true
                }
            }
        });
    }

    /// Whether [`drain`](Shutdown::drain) or [`trigger`](Shutdown::trigger)
    /// was called.
    pub fn is_triggered(&self) -> bool {
        self.inner.plan.borrow().is_some()
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
        let place = self.inner.registered.fetch_add(1, Ordering::Relaxed);
        Registration {
            plan: self.inner.plan.subscribe(),
            place: spread(place),
            shutdown: self.clone(),
        }
    }
}

/// The `n`th connection's moment within a drain, as a fraction of it.
///
/// The fractional parts of n times the golden ratio (a Weyl sequence) fill
/// [0, 1) evenly for any run of consecutive `n`, so the connections live at
/// a drain, whichever they are, get moments spread over the whole time
/// without a list of them to hand out places from.
fn spread(n: u64) -> f64 {
    const GOLDEN: f64 = 0.618_033_988_749_894_9;
    // Exact for n < 2^53, far more connections than a process serves.
    (n as f64 * GOLDEN).fract()
}

/// One live connection's view of the switch.
pub(crate) struct Registration {
    plan: watch::Receiver<Option<Plan>>,
    /// Its fraction of a drain, in [0, 1).
    place: f64,
    shutdown: Shutdown,
}

impl Registration {
    /// Resolves when this connection's moment to close has come.
    pub(crate) async fn triggered(&mut self) {
        loop {
            // No error can come: the registration holds the switch, and so
            // its sender.
            let plan = self
                .plan
                .wait_for(Option::is_some)
                .await
                .ok()
                .and_then(|p| *p);
            let Some(plan) = plan else {
                unreachable!("waited for a plan, with the switch alive");
            };
            let at = plan.start + plan.over.mul_f64(self.place);
            // Boxed: only connections of a draining server get here, and
            // inline the timer would make every connection's future larger.
            let wait = Box::pin(sleep_until(at));
            tokio::select! {
                () = wait => return,
                // A shorter plan: work out the moment again.
                _ = self.plan.changed() => {}
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_run_of_places_covers_the_drain_evenly() {
        // 200 connections registered after 1,000 others closed: in every
        // tenth of the drain between 10 and 30 of them close.
        let mut tenths = [0; 10];
        for n in 1_000..1_200 {
            tenths[(spread(n) * 10.0) as usize] += 1;
        }
        assert!(tenths.iter().all(|&k| (10..=30).contains(&k)), "{tenths:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn connections_close_at_their_own_moment_and_trigger_closes_the_rest_at_once() {
        let shutdown = Shutdown::new();
        let mut connections: Vec<_> = (0..10).map(|_| shutdown.register()).collect();
        let start = Instant::now();
        shutdown.drain(Duration::from_secs(10));
        assert!(shutdown.is_triggered());
        let closed_at =
            futures_util::future::join_all(connections[..5].iter_mut().map(|c| async move {
                c.triggered().await;
                start.elapsed()
            }))
            .await;
        // Each at 10 s times its place (the first place is 0).
        for (n, at) in closed_at.iter().enumerate() {
            let expected = Duration::from_secs(10).mul_f64(spread(n as u64));
            assert!(
                at.abs_diff(expected) < Duration::from_millis(2),
                "{n}: {at:?} vs {expected:?}"
            );
        }
        // A longer drain changes nothing; trigger closes the others now.
        shutdown.drain(Duration::from_secs(60));
        let before = Instant::now();
        shutdown.trigger();
        for c in &mut connections[5..] {
            c.triggered().await;
        }
        assert_eq!(before.elapsed(), Duration::ZERO);
        drop(connections);
        assert_eq!(shutdown.live_connections(), 0);
        shutdown.drained().await;
    }
}
