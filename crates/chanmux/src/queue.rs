//! A bounded multi-producer, single-consumer queue that allocates nothing
//! until the first message.
//!
//! Every connection has several queues (the outbound queue, an inbox per
//! stream), and most of them are empty most of the time. Tokio's `mpsc`
//! allocates a block of 32 slots per queue up front (2,336 bytes per stream
//! inbox under valgrind's massif, see BENCHMARKS.md's notes), which made
//! queues the largest part of an idle connection's memory. This one keeps its messages in a `VecDeque` that
//! grows on first use, under a mutex that is never held across an await.
//! The one receiver's waker is kept under the same mutex, so a message
//! costs one lock on each side and no atomic waker of its own; it is woken
//! only when it waits, by reference (no waker clone per message). Senders
//! that wait for room are woken through a `Notify`.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use tokio::sync::Notify;

/// Why [`Sender::try_send`] did not queue the message (which it returns).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum TrySendError<T> {
    /// The queue holds `capacity` messages.
    Full(T),
    /// The receiver is gone or closed.
    Closed(T),
}

/// The receiver is gone or closed; the message is returned.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Closed<T>(pub(crate) T);

/// Makes a queue holding at most `capacity` messages, of any size.
#[cfg(test)]
pub(crate) fn bounded<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    bounded_bytes(capacity, usize::MAX, |_| 0)
}

/// Makes a queue holding at most `capacity` messages and about `max_bytes`
/// bytes, as `weigh` counts them: a message that would take the queue over
/// `max_bytes` is refused (or waits) unless the queue is empty, so a large
/// message always fits alone. A [`Permit`] reserves a slot while any bytes
/// are free, so its message may go over by its own size.
pub(crate) fn bounded_bytes<T>(
    capacity: usize,
    max_bytes: usize,
    weigh: fn(&T) -> usize,
) -> (Sender<T>, Receiver<T>) {
    bounded_in(capacity, max_bytes, weigh, None)
}

/// The bytes several queues may hold together (a connection's stream
/// queues): a message that would take them over `max` is refused (or waits)
/// unless none of them holds anything, so one message always fits.
#[derive(Debug)]
pub(crate) struct Budget {
    used: AtomicUsize,
    max: usize,
}

impl Budget {
    pub(crate) fn new(max: usize) -> Arc<Self> {
        Arc::new(Budget {
            used: AtomicUsize::new(0),
            max,
        })
    }

    fn allows(&self, weight: usize) -> bool {
        let used = self.used.load(Ordering::Relaxed);
        used == 0 || used.saturating_add(weight) <= self.max
    }
}

/// As [`bounded_bytes`], and within `budget`, shared with other queues.
pub(crate) fn bounded_in<T>(
    capacity: usize,
    max_bytes: usize,
    weigh: fn(&T) -> usize,
    budget: Option<Arc<Budget>>,
) -> (Sender<T>, Receiver<T>) {
    assert!(capacity > 0, "a queue needs room for at least one message");
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            items: VecDeque::new(),
            reserved: 0,
            bytes: 0,
            closed: false,
            receiver: None,
            waiting: false,
            senders_waiting: 0,
        }),
        capacity,
        max_bytes,
        weigh,
        budget,
        senders: AtomicUsize::new(1),
        room: Notify::new(),
    });
    (
        Sender {
            shared: shared.clone(),
        },
        Receiver { shared },
    )
}

struct Shared<T> {
    state: Mutex<State<T>>,
    capacity: usize,
    max_bytes: usize,
    weigh: fn(&T) -> usize,
    /// The bytes this queue shares with others, if any.
    budget: Option<Arc<Budget>>,
    /// Live [`Sender`]s; at zero, the receiver sees the end once drained.
    senders: AtomicUsize,
    /// Wakes a waiting sender: a slot freed up or the queue closed.
    room: Notify,
}

struct State<T> {
    items: VecDeque<T>,
    /// Slots promised to [`Permit`]s not yet used.
    reserved: usize,
    /// What the queued messages weigh.
    bytes: usize,
    closed: bool,
    /// The receiver's waker, kept between waits (its task's waker rarely
    /// changes, so it is cloned once, not once per message).
    receiver: Option<Waker>,
    /// The receiver is waiting: the next message (or the end) wakes it.
    waiting: bool,
    /// Senders waiting for room: a freed slot is theirs, not a
    /// [`try_send_spare`](Sender::try_send_spare)'s.
    senders_waiting: u32,
}

impl<T> State<T> {
    /// Wakes the receiver if it waits (a message arrived, or the end).
    fn wake_receiver(&mut self) {
        if std::mem::take(&mut self.waiting)
            && let Some(waker) = &self.receiver
        {
            waker.wake_by_ref();
        }
    }
}

impl<T> Shared<T> {
    fn state(&self) -> MutexGuard<'_, State<T>> {
        // Nothing panics while holding the lock, but a poisoned queue is
        // still consistent: every update is a single push, pop or flag.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Room for a message of unknown weight: a free slot and a free byte.
    fn has_room(&self, state: &State<T>) -> bool {
        state.items.len() + state.reserved < self.capacity
            && state.bytes < self.max_bytes
            && self.budget.as_ref().is_none_or(|budget| budget.allows(1))
    }

    /// Room for a message weighing `weight` (a weightless one, a control
    /// message, needs only a slot).
    fn has_room_for(&self, state: &State<T>, weight: usize) -> bool {
        state.items.len() + state.reserved < self.capacity
            && (weight == 0
                || ((state.items.is_empty()
                    || state.bytes.saturating_add(weight) <= self.max_bytes)
                    && self.budget.as_ref().is_none_or(|b| b.allows(weight))))
    }

    /// `weight` bytes were queued (`taken`) or left the queue.
    fn count(&self, weight: usize, taken: bool) {
        if let Some(budget) = &self.budget {
            if taken {
                budget.used.fetch_add(weight, Ordering::Relaxed);
            } else {
                budget.used.fetch_sub(weight, Ordering::Relaxed);
            }
        }
    }

    /// Takes the next message, for the one receiver.
    fn pop(&self) -> Result<T, Empty> {
        let mut state = self.state();
        match state.items.pop_front() {
            Some(value) => {
                let weight = (self.weigh)(&value);
                state.bytes -= weight;
                drop(state);
                self.count(weight, false);
                self.room.notify_one();
                Ok(value)
            }
            None if state.closed || self.senders.load(Ordering::Acquire) == 0 => Err(Empty::Ended),
            None => Err(Empty::Waiting),
        }
    }
}

/// Sends into the queue. Cloning adds a sender; the receiver sees the end
/// once every sender is dropped.
pub(crate) struct Sender<T> {
    shared: Arc<Shared<T>>,
}

/// A sender that does not keep the queue open (see [`Sender::downgrade`]).
pub(crate) struct WeakSender<T> {
    shared: Arc<Shared<T>>,
}

/// A slot reserved by [`Sender::reserve`]: sending through it cannot fail
/// for lack of room. Dropped unused, it frees the slot.
pub(crate) struct Permit<'a, T> {
    shared: &'a Shared<T>,
}

/// A sender waiting in [`Sender::reserve`], counted until it stops waiting
/// (woken or cancelled).
struct Waiting<'a, T>(&'a Shared<T>);

impl<T> Drop for Waiting<'_, T> {
    fn drop(&mut self) {
        self.0.state().senders_waiting -= 1;
    }
}

/// Takes messages out of the queue, in order.
pub(crate) struct Receiver<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Sender<T> {
    /// Queues `value` if there is room.
    pub(crate) fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        Sender::push(&self.shared, value, false, || true)
    }

    /// Queues `value` only into room that no waiting sender is owed, and
    /// only while `allowed()` holds, checked under the queue's lock. So a
    /// message that may be dropped (a broadcast) never takes a freed slot
    /// from a sender that waits for one (a reply), and a message queued
    /// once `allowed` has stopped holding (a stream's `closed` frame) always
    /// comes after it. `Closed` when `allowed` fails.
    pub(crate) fn try_send_spare(
        &self,
        value: T,
        allowed: impl FnOnce() -> bool,
    ) -> Result<(), TrySendError<T>> {
        Sender::push(&self.shared, value, true, allowed)
    }

    fn push(
        shared: &Shared<T>,
        value: T,
        spare_only: bool,
        allowed: impl FnOnce() -> bool,
    ) -> Result<(), TrySendError<T>> {
        let mut state = shared.state();
        if state.closed || !allowed() {
            return Err(TrySendError::Closed(value));
        }
        let weight = (shared.weigh)(&value);
        if (spare_only && state.senders_waiting > 0) || !shared.has_room_for(&state, weight) {
            return Err(TrySendError::Full(value));
        }
        state.bytes += weight;
        shared.count(weight, true);
        state.items.push_back(value);
        state.wake_receiver();
        Ok(())
    }

    /// Queues `value`, waiting for room.
    ///
    /// # Cancel safety
    ///
    /// Cancelling the wait drops `value` unsent; use [`reserve`](Self::reserve)
    /// to keep it.
    pub(crate) async fn send(&self, value: T) -> Result<(), Closed<T>> {
        match self.reserve().await {
            Ok(permit) => {
                permit.send(value);
                Ok(())
            }
            Err(Closed(())) => Err(Closed(value)),
        }
    }

    /// Waits for room and reserves a slot.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: nothing is reserved unless this returns.
    pub(crate) async fn reserve(&self) -> Result<Permit<'_, T>, Closed<()>> {
        {
            // The usual case: room at once, without touching the wake-up list.
            let mut state = self.shared.state();
            if let Some(reserved) = self.take_room(&mut state) {
                return reserved;
            }
            // Counted as waiting from here until this returns (or is
            // cancelled), so no spare send takes the slot it is woken for.
            state.senders_waiting += 1;
        }
        let _waiting = Waiting(&self.shared);
        loop {
            let mut room = std::pin::pin!(self.shared.room.notified());
            // Registered before the look: every slot freed from here on
            // wakes a waiter, however many wait at once.
            room.as_mut().enable();
            let reserved = self.take_room(&mut self.shared.state());
            if let Some(reserved) = reserved {
                return reserved;
            }
            room.await;
        }
    }

    /// A slot if there is one, or the end if the queue is closed; `None`
    /// when it is full.
    fn take_room(&self, state: &mut State<T>) -> Option<Result<Permit<'_, T>, Closed<()>>> {
        if state.closed {
            return Some(Err(Closed(())));
        }
        if !self.shared.has_room(state) {
            return None;
        }
        state.reserved += 1;
        Some(Ok(Permit {
            shared: &self.shared,
        }))
    }

    /// A handle that can send while this sender (or a clone) lives, without
    /// keeping the queue open itself.
    pub(crate) fn downgrade(&self) -> WeakSender<T> {
        WeakSender {
            shared: self.shared.clone(),
        }
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.shared.senders.fetch_add(1, Ordering::Relaxed);
        Sender {
            shared: self.shared.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        if self.shared.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shared.state().wake_receiver();
        }
    }
}

impl<T> Clone for WeakSender<T> {
    fn clone(&self) -> Self {
        WeakSender {
            shared: self.shared.clone(),
        }
    }
}

impl<T> WeakSender<T> {
    /// Refuses further messages: the receiver gets those already queued,
    /// then the end.
    pub(crate) fn close(&self) {
        {
            let mut state = self.shared.state();
            state.closed = true;
            state.wake_receiver();
        }
        self.shared.room.notify_waiters();
    }

    /// Queues `value` if a sender still lives and there is room; no sender
    /// is made for it (see [`Sender::try_send`]).
    pub(crate) fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        if self.shared.senders.load(Ordering::Acquire) == 0 {
            return Err(TrySendError::Closed(value));
        }
        Sender::push(&self.shared, value, false, || true)
    }
}

impl<T> Permit<'_, T> {
    /// Queues `value` in the reserved slot. If the receiver has closed
    /// meanwhile, `value` is dropped, as it would have been in the queue.
    pub(crate) fn send(self, value: T) {
        let shared = self.shared;
        // The slot is used, not freed: no need to run Drop.
        std::mem::forget(self);
        let mut state = shared.state();
        state.reserved -= 1;
        if state.closed {
            drop(state);
            drop(value);
            return;
        }
        let weight = (shared.weigh)(&value);
        state.bytes += weight;
        shared.count(weight, true);
        state.items.push_back(value);
        state.wake_receiver();
    }
}

impl<T> Drop for Permit<'_, T> {
    fn drop(&mut self) {
        self.shared.state().reserved -= 1;
        self.shared.room.notify_one();
    }
}

impl<T> Receiver<T> {
    /// The next message; `None` once the queue is empty and closed or
    /// without senders.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a message is taken only when this returns it.
    pub(crate) async fn recv(&mut self) -> Option<T> {
        std::future::poll_fn(|cx| self.poll_recv(cx).map(|next| next.map(|(value, _)| value))).await
    }

    /// As [`recv`](Self::recv), with how many messages were still queued
    /// behind this one when it was taken (a batch to take, without locking
    /// again to count them).
    pub(crate) async fn recv_counted(&mut self) -> Option<(T, usize)> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Polls for the next message and how many are behind it.
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<(T, usize)>> {
        let shared = &*self.shared;
        let mut state = shared.state();
        match state.items.pop_front() {
            Some(value) => {
                let weight = (shared.weigh)(&value);
                state.bytes -= weight;
                let behind = state.items.len();
                drop(state);
                shared.count(weight, false);
                shared.room.notify_one();
                Poll::Ready(Some((value, behind)))
            }
            None if state.closed || shared.senders.load(Ordering::Acquire) == 0 => {
                Poll::Ready(None)
            }
            None => {
                // Under the lock senders take to push: no message can slip
                // in between the look and the wait.
                if !state
                    .receiver
                    .as_ref()
                    .is_some_and(|waker| waker.will_wake(cx.waker()))
                {
                    state.receiver = Some(cx.waker().clone());
                }
                state.waiting = true;
                Poll::Pending
            }
        }
    }

    /// The next message if one is queued.
    pub(crate) fn try_recv(&mut self) -> Result<T, Empty> {
        self.shared.pop()
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let items = {
            let mut state = self.shared.state();
            state.closed = true;
            let held = std::mem::take(&mut state.bytes);
            self.shared.count(held, false);
            std::mem::take(&mut state.items)
        };
        self.shared.room.notify_waiters();
        // Dropped outside the lock: a message may own a sender of this queue.
        drop(items);
    }
}

/// Why [`Receiver::try_recv`] returned nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Empty {
    /// More may come.
    Waiting,
    /// Closed, or every sender is gone.
    Ended,
}

macro_rules! opaque_debug {
    ($($name:ident),*) => {$(
        impl<T> fmt::Debug for $name<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name)).finish_non_exhaustive()
            }
        }
    )*};
}
opaque_debug!(Sender, WeakSender, Receiver);

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::time::timeout;

    #[tokio::test]
    async fn messages_arrive_in_order_and_the_end_is_seen() {
        let (tx, mut rx) = bounded(4);
        tx.try_send(1).unwrap();
        tx.send(2).await.unwrap();
        drop(tx);
        assert_eq!(rx.recv().await, Some(1));
        assert_eq!(rx.recv().await, Some(2));
        assert_eq!(rx.recv().await, None);
    }

    #[tokio::test]
    async fn a_full_queue_refuses_try_send_and_makes_send_wait() {
        let (tx, mut rx) = bounded(2);
        tx.try_send(1).unwrap();
        let permit = tx.reserve().await.unwrap();
        assert_eq!(tx.try_send(3), Err(TrySendError::Full(3)));
        assert!(
            timeout(Duration::from_millis(20), tx.send(3))
                .await
                .is_err()
        );
        permit.send(2);
        let waiting = tokio::spawn({
            let tx = tx.clone();
            async move { tx.send(3).await }
        });
        assert_eq!(rx.recv().await, Some(1));
        waiting.await.unwrap().unwrap();
        assert_eq!(rx.recv().await, Some(2));
        assert_eq!(rx.recv().await, Some(3));
    }

    #[tokio::test]
    async fn a_byte_bound_refuses_what_would_go_over_but_takes_anything_alone() {
        let (tx, mut rx) = bounded_bytes::<Vec<u8>>(10, 100, Vec::len);
        tx.try_send(vec![0; 60]).unwrap();
        tx.try_send(vec![0; 40]).unwrap();
        assert!(matches!(
            tx.try_send(vec![0; 1]),
            Err(TrySendError::Full(_))
        ));
        assert_eq!(rx.recv().await.unwrap().len(), 60);
        assert!(matches!(
            tx.try_send(vec![0; 61]),
            Err(TrySendError::Full(_))
        ));
        tx.try_send(vec![0; 60]).unwrap();
        assert_eq!(rx.recv().await.unwrap().len(), 40);
        assert_eq!(rx.recv().await.unwrap().len(), 60);
        // Alone, a message over the bound still goes.
        tx.try_send(vec![0; 500]).unwrap();
        assert!(matches!(tx.try_send(vec![]), Ok(())));
        // A sender waiting for bytes is let in once they are freed.
        let waiting = tokio::spawn({
            let tx = tx.clone();
            async move { tx.send(vec![0; 10]).await.map_err(|_| ()) }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        assert_eq!(rx.recv().await.unwrap().len(), 500);
        assert_eq!(rx.recv().await.unwrap().len(), 0);
        waiting.await.unwrap().unwrap();
        assert_eq!(rx.recv().await.unwrap().len(), 10);
    }

    #[tokio::test]
    async fn an_unused_permit_frees_its_slot() {
        let (tx, _rx) = bounded::<u8>(1);
        drop(tx.reserve().await.unwrap());
        tx.try_send(1).unwrap();
    }

    #[tokio::test]
    async fn closing_fails_waiting_senders_and_wakes_the_receiver_after_what_was_queued() {
        let (tx, mut rx) = bounded(1);
        tx.try_send(1).unwrap();
        let waiting = tokio::spawn({
            let tx = tx.clone();
            async move { tx.send(2).await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "the sender waits for room");
        tx.downgrade().close();
        let woken = timeout(Duration::from_secs(5), waiting).await;
        assert_eq!(woken.expect("closing wakes it").unwrap(), Err(Closed(2)));
        assert_eq!(tx.try_send(3), Err(TrySendError::Closed(3)));
        assert_eq!(rx.recv().await, Some(1));
        assert_eq!(rx.recv().await, None);
    }

    #[test]
    fn queues_sharing_a_budget_refuse_what_would_go_over_it_unless_all_are_empty() {
        let budget = Budget::new(10);
        let weigh: fn(&usize) -> usize = |n| *n;
        let (a, mut a_rx) = bounded_in(8, 100, weigh, Some(budget.clone()));
        let (b, mut b_rx) = bounded_in(8, 100, weigh, Some(budget.clone()));
        // Everything empty: one message fits whatever its size.
        assert_eq!(a.try_send(30), Ok(()));
        assert_eq!(b.try_send(1), Err(TrySendError::Full(1)));
        assert_eq!(a_rx.try_recv(), Ok(30));
        assert_eq!(a.try_send(6), Ok(()));
        assert_eq!(b.try_send(4), Ok(()));
        assert_eq!(b.try_send(1), Err(TrySendError::Full(1)));
        assert_eq!(b_rx.try_recv(), Ok(4));
        assert_eq!(b.try_send(4), Ok(()));
        // A dropped receiver gives back what its queue held.
        drop(a_rx);
        assert_eq!(b.try_send(6), Ok(()));
        assert_eq!(budget.used.load(Ordering::Relaxed), 10);
    }

    #[tokio::test]
    async fn a_dropped_receiver_fails_senders() {
        let (tx, rx) = bounded(1);
        drop(rx);
        assert_eq!(tx.send(1).await, Err(Closed(1)));
    }

    #[tokio::test]
    async fn a_weak_sender_works_only_while_a_sender_lives() {
        let (tx, mut rx) = bounded(2);
        let weak = tx.downgrade();
        weak.try_send(1).unwrap();
        drop(tx);
        assert_eq!(weak.try_send(2), Err(TrySendError::Closed(2)));
        assert_eq!(rx.recv().await, Some(1));
        assert_eq!(rx.recv().await, None);
    }

    #[tokio::test]
    async fn a_waiting_receiver_wakes_for_a_message_and_for_the_last_sender() {
        let (tx, mut rx) = bounded(1);
        let receiver = tokio::spawn(async move { (rx.recv().await, rx.recv().await) });
        tokio::task::yield_now().await;
        tx.send(7).await.unwrap();
        tokio::task::yield_now().await;
        drop(tx);
        let woken = timeout(Duration::from_secs(5), receiver).await;
        assert_eq!(woken.expect("both wake it").unwrap(), (Some(7), None));
    }

    #[test]
    fn an_empty_queue_allocates_no_storage() {
        let (_tx, rx) = bounded::<[u8; 64]>(64);
        assert_eq!(rx.shared.state().items.capacity(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_senders_lose_nothing_under_contention() {
        let (tx, mut rx) = bounded(3);
        let senders: Vec<_> = (0..4u32)
            .map(|s| {
                let tx = tx.clone();
                tokio::spawn(async move {
                    for i in 0..2_000 {
                        tx.send((s, i)).await.unwrap();
                    }
                })
            })
            .collect();
        drop(tx);
        let mut next = [0u32; 4];
        while let Some((s, i)) = rx.recv().await {
            assert_eq!(i, next[s as usize], "per-sender order");
            next[s as usize] += 1;
        }
        for sender in senders {
            sender.await.unwrap();
        }
        assert_eq!(next, [2_000; 4]);
    }

    #[tokio::test]
    async fn a_spare_send_never_takes_the_slot_a_waiting_sender_is_owed() {
        let (tx, mut rx) = bounded(1);
        tx.try_send("broadcast 1").unwrap();
        let waiter = tx.clone();
        let reply = tokio::spawn(async move { waiter.send("reply").await });
        // Until the reply waits, a spare send only finds the queue full.
        while rx.shared.state().senders_waiting == 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(rx.recv().await, Some("broadcast 1"));
        assert!(matches!(
            tx.try_send_spare("broadcast 2", || true),
            Err(TrySendError::Full(_))
        ));
        reply.await.unwrap().unwrap();
        assert_eq!(rx.recv().await, Some("reply"));
        assert_eq!(rx.shared.state().senders_waiting, 0);
        tx.try_send_spare("broadcast 3", || true).unwrap();
        assert_eq!(rx.recv().await, Some("broadcast 3"));
    }

    #[tokio::test]
    async fn a_cancelled_wait_stops_counting_as_waiting() {
        let (tx, _rx) = bounded(1);
        tx.try_send(1).unwrap();
        let wait = tx.send(2);
        assert!(
            tokio::time::timeout(Duration::from_millis(10), wait)
                .await
                .is_err()
        );
        assert_eq!(tx.shared.state().senders_waiting, 0);
    }

    #[test]
    fn a_spare_send_is_refused_once_its_condition_fails() {
        let (tx, mut rx) = bounded(4);
        assert!(matches!(
            tx.try_send_spare(1, || false),
            Err(TrySendError::Closed(1))
        ));
        tx.try_send_spare(2, || true).unwrap();
        assert_eq!(rx.try_recv(), Ok(2));
    }
}
