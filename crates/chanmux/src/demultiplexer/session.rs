//! [`Session`]: a demultiplexer on one connection. It holds the table of
//! running streams, which grows and shrinks as the client subscribes and
//! streams end, and decides when the socket accepts, refuses or closes.
//! Routing a frame (route.rs) and running the streams (driver.rs) build on it.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context as TaskContext, Poll, ready};
use std::time::Duration;

use chanmux_core::{ErrorCode, Ref, close_code, closed_frame, error_frame_with, subscribed_frame};
use futures_util::future::BoxFuture;
use futures_util::task::AtomicWaker;
use tokio::sync::OnceCell;

use super::{Kind, OnDemand, Spec};
use crate::consumer::{Input, StreamLink, Unaccepted};
use crate::layer::SharedLayer;
use crate::queue;
use crate::{AcceptError, Context, SendError, Start, Text};

pub(crate) struct Session {
    pub(super) spec: Arc<Spec>,
    /// The demultiplexer's own context: the socket, or an outer stream.
    parent: Context,
    /// The streams' channel layer: the demultiplexer's, else the parent's.
    layer: Option<SharedLayer>,
    /// The bytes all the streams' queues may hold together.
    queued: Arc<queue::Budget>,
    /// Set once the parent accepted (for the first accepting eager stream,
    /// or at once without eager streams).
    parent_accepted: OnceCell<()>,
    state: Mutex<State>,
    /// Wakes the driver: a stream was started, or the client left.
    pub(super) driver: AtomicWaker,
    /// Set with each start and at the client's leaving, so the driver
    /// locks the table only when there is something to take in.
    pub(super) news: AtomicBool,
    /// How many streams are handling a frame that had a ref: replies look
    /// for one in the table only when some are.
    refs_in_flight: AtomicUsize,
}

pub(super) struct State {
    counts: Counts,
    /// Running streams of named entries, by entry.
    pub(super) named: Vec<Option<Running>>,
    /// Running pattern streams, by name; boxed, and made at the first, as
    /// most connections never start one.
    pub(super) matched: Matched,
    /// Streams the client started whose consumers are still running (or
    /// still finishing their disconnect): what `max_streams` bounds.
    pub(super) on_demand: u32,
    /// Futures of streams started since the driver last looked.
    pub(super) started: Vec<Tagged>,
    /// `subscribed` replies owed once a stream accepts: stream id and ref,
    /// and the reason if it refused instead.
    owed: Vec<Owed>,
    /// The ref of the frame each stream is handling, if it had one.
    refs: Vec<(u32, Ref)>,
    next_id: u32,
    pub(super) disconnected: bool,
}

/// The running pattern streams of a connection.
#[derive(Default)]
#[expect(
    clippy::box_collection,
    reason = "boxed, an absent table is one pointer rather than an empty map's 48 bytes, on every connection"
)]
pub(super) struct Matched(Option<Box<HashMap<Box<str>, Running>>>);

impl Matched {
    pub(super) fn contains_key(&self, name: &str) -> bool {
        self.0.as_ref().is_some_and(|map| map.contains_key(name))
    }

    pub(super) fn get(&self, name: &str) -> Option<&Running> {
        self.0.as_ref()?.get(name)
    }

    pub(super) fn get_mut(&mut self, name: &str) -> Option<&mut Running> {
        self.0.as_mut()?.get_mut(name)
    }

    pub(super) fn insert(&mut self, name: Box<str>, running: Running) {
        self.0.get_or_insert_default().insert(name, running);
    }

    pub(super) fn remove(&mut self, name: &str) -> Option<Running> {
        self.0.as_mut()?.remove(name)
    }

    fn iter(&self) -> impl Iterator<Item = (&Box<str>, &Running)> {
        self.0.iter().flat_map(|map| map.iter())
    }

    fn drain(&mut self) -> impl Iterator<Item = Running> {
        self.0.take().into_iter().flat_map(|map| map.into_values())
    }

    fn is_empty(&self) -> bool {
        self.0.as_ref().is_none_or(|map| map.is_empty())
    }
}

impl State {
    /// Gives back the memory of tables that have emptied: a connection
    /// that subscribed once and unsubscribed again goes back to its size
    /// before (HashMap and Vec keep their capacity otherwise).
    fn shrink_empty(&mut self) {
        if self.matched.is_empty() {
            self.matched = Matched::default();
        }
        if self.owed.is_empty() && self.owed.capacity() > 0 {
            self.owed = Vec::new();
        }
        if self.refs.is_empty() && self.refs.capacity() > 0 {
            self.refs = Vec::new();
        }
    }
}

/// One running stream of this connection.
pub(super) struct Running {
    pub(super) id: u32,
    pub(super) ctx: Context,
    pub(super) input: Input,
    /// The client subscribed to it: it hears `subscribed` and `closed`.
    pub(super) subscribed: bool,
    /// Its consumer has accepted (set under the same lock as `owed`).
    pub(super) accepted: bool,
}

struct Owed {
    id: u32,
    /// The stream's name, as subscribed to.
    name: Box<str>,
    reference: Option<Ref>,
    /// Why the stream did not start, once it refused or failed.
    refusal: Option<String>,
}

/// One of the driver's futures (a stream's, a subscribe's timer, the
/// socket's opening), which says when it ends which stream it was.
pub(super) struct Tagged {
    future: BoxFuture<'static, ()>,
    finished: Finished,
}

impl Tagged {
    /// A future that is no stream's.
    pub(super) fn untagged(future: BoxFuture<'static, ()>) -> Self {
        Tagged {
            future,
            finished: Finished {
                id: None,
                on_demand: false,
            },
        }
    }
}

impl Future for Tagged {
    type Output = Finished;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Finished> {
        ready!(self.future.as_mut().poll(cx));
        Poll::Ready(self.finished)
    }
}

/// A future of the driver ended: which stream's (`None` for a timer or
/// the socket's opening), and whether the client started it.
#[derive(Clone, Copy)]
pub(super) struct Finished {
    pub(super) id: Option<u32>,
    pub(super) on_demand: bool,
}

/// Counted in `u32`s: a connection holds one, and a client can start at
/// most `max_streams` streams.
struct Counts {
    /// Streams that have neither accepted nor refused nor failed.
    pending: u32,
    /// Streams accepted and not closed.
    open: u32,
    /// Streams whose connect handler has not returned yet.
    connecting: u32,
    failed: u32,
    total: u32,
    /// The close of the last accepting stream, held back while other streams
    /// are still in connect (one of them may yet accept). Boxed: rare.
    deferred_close: Option<Box<(u16, String)>>,
    /// The parent heard that this demultiplexer's connect is over.
    connect_reported: bool,
}

impl Counts {
    /// The deferred close, once no stream is accepting or still connecting.
    fn take_due_close(&mut self) -> Option<(u16, String)> {
        if self.open == 0 && self.connecting == 0 {
            self.deferred_close.take().map(|close| *close)
        } else {
            None
        }
    }
}

/// What a name refers to on this connection.
pub(super) enum Found<'s> {
    Running(&'s mut Running),
    /// A named entry with no running stream.
    Stopped(usize),
    /// A pattern entry matching the name, with what it captured.
    Matches(usize),
    Unknown,
}

impl Session {
    pub(super) fn new(spec: Arc<Spec>, parent: Context) -> Self {
        let named = spec.entries.iter().map(|_| None).collect();
        let layer = spec.layer.clone().or_else(|| parent.layer().cloned());
        let queued = queue::Budget::new(spec.config.max_queued_bytes);
        Session {
            spec,
            layer,
            queued,
            parent,
            parent_accepted: OnceCell::new(),
            state: Mutex::new(State {
                counts: Counts {
                    pending: 0,
                    open: 0,
                    connecting: 0,
                    failed: 0,
                    total: 0,
                    deferred_close: None,
                    connect_reported: false,
                },
                named,
                matched: Matched::default(),
                on_demand: 0,
                started: Vec::new(),
                owed: Vec::new(),
                refs: Vec::new(),
                next_id: 0,
                disconnected: false,
            }),
            driver: AtomicWaker::new(),
            news: AtomicBool::new(false),
            refs_in_flight: AtomicUsize::new(0),
        }
    }

    /// Tells the driver to look at the table.
    fn wake_driver(&self) {
        self.news.store(true, Ordering::Release);
        self.driver.wake();
    }

    pub(crate) fn parent(&self) -> &Context {
        &self.parent
    }

    /// The channel layer of this connection's streams.
    pub(crate) fn layer(&self) -> Option<&SharedLayer> {
        self.layer.as_ref()
    }

    pub(super) fn state(&self) -> MutexGuard<'_, State> {
        // Every update is small and panic-free; a poisoned table is still
        // consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the demultiplexer has lazy or pattern streams: then the
    /// socket outlives its streams.
    fn is_dynamic(&self) -> bool {
        self.spec.dynamic
    }

    /// Finds what `name` refers to. Named entries come before patterns.
    pub(super) fn find<'s>(&self, state: &'s mut State, name: &str) -> Found<'s> {
        if let Some(&index) = self.spec.index.get(name) {
            return match &mut state.named[index] {
                Some(running) => Found::Running(running),
                None => Found::Stopped(index),
            };
        }
        if self.spec.patterns.is_empty() {
            return Found::Unknown;
        }
        if state.matched.contains_key(name) {
            return Found::Running(state.matched.get_mut(name).expect("just looked"));
        }
        self.matching_pattern(name)
            .map_or(Found::Unknown, Found::Matches)
    }

    /// The first pattern entry that `name` matches.
    pub(super) fn matching_pattern(&self, name: &str) -> Option<usize> {
        self.spec
            .patterns
            .iter()
            .copied()
            .find(|&index| match &self.spec.entries[index].kind {
                Kind::Pattern(pattern) => pattern.matches(name),
                _ => false,
            })
    }

    /// Starts entry `index`'s consumer on this connection; `on_demand` when
    /// the client started it (by name `name`, with `params`), `None` for an
    /// eager stream at connect.
    pub(super) fn start_stream(
        self: &Arc<Self>,
        state: &mut State,
        index: usize,
        on_demand: Option<Box<OnDemand>>,
        subscribed: bool,
    ) -> (u32, Context) {
        let entry = &self.spec.entries[index];
        let id = state.next_id;
        state.next_id = state.next_id.wrapping_add(1);
        let (inbox, inbox_rx) = queue::bounded_in(
            self.spec.config.stream_queue_capacity,
            self.spec.config.stream_queue_bytes,
            crate::consumer::Event::weight,
            Some(self.queued.clone()),
        );
        let by_client = on_demand.is_some();
        let link = StreamLink {
            declared: entry.declared.clone(),
            demux: self.clone(),
            id,
            on_demand,
        };
        let name = link.name().to_owned();
        let ctx = Context::for_stream(link, inbox.downgrade());
        // A child of the connection's span, which is current here.
        let span = tracing::info_span!(target: crate::SPANS, "stream", stream = &*name);
        let started = entry.factory.start(Start {
            ctx: ctx.clone(),
            inbox,
            inbox_rx,
            span,
        });
        state.started.push(Tagged {
            future: started.future,
            finished: Finished {
                id: Some(id),
                on_demand: by_client,
            },
        });
        let running = Running {
            id,
            ctx: ctx.clone(),
            input: started.input,
            subscribed,
            accepted: false,
        };
        match &entry.kind {
            Kind::Pattern(_) => {
                state.matched.insert(name.into(), running);
            }
            _ => state.named[index] = Some(running),
        }
        if by_client {
            state.on_demand += 1;
        }
        let counts = &mut state.counts;
        counts.pending += 1;
        counts.connecting += 1;
        counts.total += 1;
        self.wake_driver();
        (id, ctx)
    }

    /// Takes the running stream `link` out of the table, if it is still
    /// there (a later run under the same name is left alone).
    fn remove(&self, state: &mut State, link: &StreamLink) -> Option<Running> {
        let removed = if self.spec.entries[link.declared.index].is_pattern() {
            match state.matched.get(link.name()) {
                Some(running) if running.id == link.id => state.matched.remove(link.name()),
                _ => None,
            }
        } else {
            state.named[link.declared.index].take_if(|running| running.id == link.id)
        };
        state.shrink_empty();
        removed
    }

    /// Takes stream `name` out of the table if its run is `id`.
    pub(super) fn take(&self, state: &mut State, name: &str, id: u32) -> Option<Running> {
        if let Some(&index) = self.spec.index.get(name) {
            let slot = &mut state.named[index];
            return slot.take_if(|running| running.id == id);
        }
        let taken = match state.matched.get(name) {
            Some(running) if running.id == id => state.matched.remove(name),
            _ => None,
        };
        state.shrink_empty();
        taken
    }

    /// Owes the client a `subscribed` for stream `id` once it accepts (with
    /// the subscribe's ref), or a `subscription_refused` if it refuses.
    pub(super) fn owe(state: &mut State, id: u32, name: &str, reference: Option<Ref>) {
        state.owed.push(Owed {
            id,
            name: name.into(),
            reference,
            refusal: None,
        });
    }

    /// Runs `work` in the driver, beside the streams (so it may wait for
    /// them: the connection loop must not).
    pub(super) fn run_in_driver(
        &self,
        state: &mut State,
        work: impl Future<Output = ()> + Send + 'static,
    ) {
        state.started.push(Tagged::untagged(Box::pin(work)));
        self.wake_driver();
    }

    /// Gives stream `ctx` the subscribe timeout to accept or refuse: then a
    /// stream the client started is refused (which answers a subscribe
    /// waiting for it, and the frames queued for it); for a stream started
    /// at connect, only the subscribe waiting for it (`id`) is refused, and
    /// the stream runs on.
    pub(super) fn time_decision(self: &Arc<Self>, state: &mut State, id: u32, ctx: Context) {
        let session = Arc::downgrade(self);
        let timeout = self.spec.config.subscribe_timeout;
        self.run_in_driver(state, async move {
            tokio::select! {
                () = tokio::time::sleep(timeout) => {
                    if let Some(session) = session.upgrade() {
                        session.decision_timed_out(id, &ctx, timeout).await;
                    }
                }
                // Ended first (or the client left): nothing to time out.
                () = ctx.closing() => {}
            }
        });
    }

    async fn decision_timed_out(&self, id: u32, ctx: &Context, timeout: Duration) {
        let Some(link) = ctx.stream_link() else {
            return;
        };
        let message = format!(
            "stream {:?} did not accept within {} s",
            link.name(),
            timeout.as_secs_f64()
        );
        if link.on_demand.is_some() {
            // Nothing happens if it has decided meanwhile.
            ctx.refuse_with(message);
            return;
        }
        let owed = {
            let mut state = self.state();
            let owed = Session::forgive(&mut state, id);
            if owed.is_some()
                && let Found::Running(running) = self.find(&mut state, link.name())
                && running.id == id
            {
                running.subscribed = false;
            }
            owed
        };
        if let Some(owed) = owed {
            let reference = owed.as_ref().map(Ref::as_json);
            let _ = self
                .send_error(
                    ErrorCode::SubscriptionRefused,
                    &message,
                    Some(link.name()),
                    reference,
                )
                .await;
        }
    }

    /// Nothing is owed for stream `id` any more (it was unsubscribed before
    /// it accepted, say): returns the subscribe's ref if one was owed.
    pub(super) fn forgive(state: &mut State, id: u32) -> Option<Option<Ref>> {
        let at = state.owed.iter().position(|owed| owed.id == id)?;
        let owed = state.owed.swap_remove(at);
        state.shrink_empty();
        Some(owed.reference)
    }

    /// A stream accepted: the socket is accepted by the first one; a client
    /// that subscribed hears `subscribed` before anything the stream sends.
    pub(crate) async fn stream_accepted(
        &self,
        link: &StreamLink,
        protocol: Option<String>,
    ) -> Result<(), AcceptError> {
        {
            let mut state = self.state();
            let counts = &mut state.counts;
            counts.pending -= 1;
            counts.open += 1;
            counts.deferred_close = None;
        }
        // Later streams wait here until the first accept has gone through,
        // so nothing they send can overtake it.
        self.accept_parent(protocol).await?;
        let owed = {
            let mut state = self.state();
            if let Some(running) = state
                .named
                .get_mut(link.declared.index)
                .and_then(Option::as_mut)
                .filter(|r| r.id == link.id)
            {
                running.accepted = true;
            } else if let Some(running) = state
                .matched
                .get_mut(link.name())
                .filter(|r| r.id == link.id)
            {
                running.accepted = true;
            }
            let owed = state.owed.iter().position(|owed| owed.id == link.id);
            let owed = owed.map(|at| state.owed.swap_remove(at));
            state.shrink_empty();
            owed
        };
        if let Some(owed) = owed {
            let reference = owed.reference.as_ref().map(Ref::as_json);
            let frame = subscribed_frame(link.name(), reference);
            let _ = self.parent.send_text(Text::known_json(frame)).await;
        }
        Ok(())
    }

    /// A stream's accept was cancelled after it counted itself open (see
    /// `Context::accept_with`).
    pub(crate) fn stream_accept_abandoned(&self) {
        self.state().counts.open -= 1;
    }

    pub(super) async fn accept_parent(&self, protocol: Option<String>) -> Result<(), AcceptError> {
        self.parent_accepted
            .get_or_try_init(|| Box::pin(self.parent.accept_with(protocol)))
            .await
            .map(|_| ())
    }

    /// A stream refused or failed before accepting. It leaves the table; a
    /// subscribe waiting for it is answered when its consumer ends. When no
    /// stream is left that could accept the socket, the socket is refused
    /// (HTTP 500 if all failed).
    pub(crate) fn stream_unaccepted(&self, link: &StreamLink, how: Unaccepted, reason: String) {
        let name = link.name();
        let message = match how {
            Unaccepted::Failed => format!("stream {name:?} failed to start"),
            Unaccepted::Refused if reason.is_empty() => {
                format!("stream {name:?} refused the subscription")
            }
            Unaccepted::Refused => reason,
        };
        if let Some(started) = &link.on_demand {
            started.set_refusal(message.clone());
        }
        let (removed, verdict) = {
            let mut state = self.state();
            let removed = self.remove(&mut state, link);
            if let Some(owed) = state.owed.iter_mut().find(|owed| owed.id == link.id) {
                owed.refusal = Some(message);
            }
            let counts = &mut state.counts;
            counts.pending -= 1;
            if how == Unaccepted::Failed {
                counts.failed += 1;
            }
            let nobody_left = counts.pending == 0 && counts.open == 0;
            let verdict = (nobody_left && !self.parent_accepted.initialized())
                .then_some(counts.failed == counts.total);
            (removed, verdict)
        };
        if let Some(Input::Demux(inner)) = removed.as_ref().map(|r| &r.input) {
            inner.disconnect(close_code::ABNORMAL);
        }
        drop(removed);
        match verdict {
            Some(true) => self.parent.fail_unaccepted(),
            Some(false) => self.parent.refuse(),
            None => {}
        }
    }

    /// An accepted stream closed itself (or failed): it leaves the table, a
    /// client that subscribed hears `closed`, and without lazy or pattern
    /// streams the socket closes with its code when it was the last
    /// accepting stream. Once the client is leaving, the parent is already
    /// marked disconnected and that close does nothing.
    ///
    /// While another stream is still in its connect handler the socket's
    /// close waits for it, so a stream that closes early cannot close the
    /// socket under a stream that is about to accept.
    pub(crate) async fn stream_closed(&self, link: &StreamLink, code: u16, reason: String) {
        let (removed, close) = {
            let mut state = self.state();
            let removed = self.remove(&mut state, link);
            let counts = &mut state.counts;
            counts.open -= 1;
            if !self.is_dynamic() {
                counts.deferred_close =
                    (counts.open == 0).then(|| Box::new((code, reason.clone())));
            }
            (removed, counts.take_due_close())
        };
        if let Some(Input::Demux(inner)) = removed.as_ref().map(|r| &r.input) {
            inner.disconnect(code);
        }
        if removed.is_some_and(|running| running.subscribed) {
            let frame = closed_frame(link.name(), code, &reason);
            let _ = self.parent.send_text(Text::known_json(frame)).await;
        }
        self.close_parent(close).await;
    }

    /// The client unsubscribed from a stream that was open or pending.
    pub(super) fn stream_unsubscribed(&self, was_open: bool) {
        let counts = &mut self.state().counts;
        if was_open {
            counts.open -= 1;
        } else {
            counts.pending -= 1;
        }
    }

    /// A stream's connect handler returned (whatever it decided). Once no
    /// stream is in connect, neither is this demultiplexer: its parent
    /// hears so (an outer demultiplexer waits for it before closing).
    pub(crate) async fn stream_connected(&self) {
        let (close, connect_over) = {
            let mut state = self.state();
            let counts = &mut state.counts;
            counts.connecting -= 1;
            let connect_over = counts.connecting == 0 && !counts.connect_reported;
            counts.connect_reported |= connect_over;
            (counts.take_due_close(), connect_over)
        };
        if connect_over {
            Box::pin(self.parent.connect_returned()).await;
        }
        self.close_parent(close).await;
    }

    /// Reports a demultiplexer without eager streams as connected.
    pub(super) async fn connected_at_once(&self) {
        self.state().counts.connect_reported = true;
        Box::pin(self.parent.connect_returned()).await;
    }

    async fn close_parent(&self, close: Option<(u16, String)>) {
        if let Some((code, reason)) = close {
            // For an outer stream, its session then disconnects this one as
            // the stream leaves its table; a socket's connection does when
            // the client answers the close.
            let _ = Box::pin(self.parent.close_with(code, reason)).await;
        }
    }

    /// A stream's consumer is ending: a subscribe still waiting for it is
    /// answered `subscription_refused`.
    pub(crate) async fn stream_ending(&self, link: &StreamLink) {
        let owed = {
            let mut state = self.state();
            state.refs.retain(|(id, _)| *id != link.id);
            self.refs_in_flight
                .store(state.refs.len(), Ordering::Release);
            let owed = state.owed.iter().position(|owed| owed.id == link.id);
            let owed = owed.map(|at| state.owed.swap_remove(at));
            state.shrink_empty();
            owed
        };
        if let Some(owed) = owed {
            self.refuse_owed(owed).await;
        }
    }

    /// Answers a subscribe whose stream ended without accepting.
    async fn refuse_owed(&self, owed: Owed) {
        let name = &*owed.name;
        let message = owed
            .refusal
            .unwrap_or_else(|| format!("stream {name:?} ended before accepting"));
        let reference = owed.reference.as_ref().map(Ref::as_json);
        let _ = self
            .send_error(
                ErrorCode::SubscriptionRefused,
                &message,
                Some(name),
                reference,
            )
            .await;
    }

    /// The client left with `code`: every stream ends with it, and the
    /// table empties (each stream's future finishes its disconnect).
    pub(crate) fn disconnect(&self, code: u16) {
        let running: Vec<Running> = {
            let mut state = self.state();
            state.disconnected = true;
            state.owed.clear();
            let named = state.named.iter_mut().filter_map(Option::take);
            let mut running: Vec<Running> = named.collect();
            running.extend(state.matched.drain());
            running
        };
        for stream in running {
            stream.ctx.disconnected(code);
            if let Input::Demux(inner) = &stream.input {
                inner.disconnect(code);
            }
        }
        self.wake_driver();
    }

    /// A stream's future has ended.
    pub(super) fn finished(self: &Arc<Self>, finished: &Finished) {
        let removed = {
            let mut state = self.state();
            if finished.on_demand {
                state.on_demand -= 1;
            }
            let Some(id) = finished.id else {
                return;
            };
            // A consumer answers a subscribe waiting for it as it ends; a
            // nested demultiplexer, which has no consumer of its own, is
            // answered for here.
            if let Some(at) = state.owed.iter().position(|owed| owed.id == id) {
                let owed = state.owed.swap_remove(at);
                let session = self.clone();
                self.run_in_driver(&mut state, async move {
                    session.refuse_owed(owed).await;
                });
            }
            state.refs.retain(|(stream, _)| *stream != id);
            // Normally gone already (it left when it closed, refused or was
            // unsubscribed); this catches any other way out.
            let named = state
                .named
                .iter_mut()
                .find(|slot| slot.as_ref().is_some_and(|r| r.id == id))
                .and_then(Option::take);
            let removed = named.or_else(|| {
                let name = state
                    .matched
                    .iter()
                    .find(|(_, r)| r.id == id)
                    .map(|(name, _)| name.clone())?;
                state.matched.remove(&name)
            });
            state.shrink_empty();
            removed
        };
        drop(removed);
    }

    /// Drops every stream and future (the connection is gone): contexts
    /// hold this session, so the table must be emptied to be freed.
    pub(super) fn clear(&self) {
        let (named, matched, started) = {
            let mut state = self.state();
            state.owed.clear();
            state.refs.clear();
            (
                std::mem::take(&mut state.named),
                std::mem::take(&mut state.matched),
                std::mem::take(&mut state.started),
            )
        };
        drop((named, matched, started));
    }

    /// The ref of the frame stream `id` is handling.
    pub(crate) fn current_ref(&self, id: u32) -> Option<Ref> {
        if self.refs_in_flight.load(Ordering::Acquire) == 0 {
            return None;
        }
        let state = self.state();
        state
            .refs
            .iter()
            .find(|(stream, _)| *stream == id)
            .map(|(_, r)| r.clone())
    }

    /// Sets (or with `None`, clears) the ref of the frame stream `id` handles.
    pub(crate) fn set_current_ref(&self, id: u32, reference: Option<Ref>) {
        let mut state = self.state();
        state.refs.retain(|(stream, _)| *stream != id);
        match reference {
            Some(reference) => state.refs.push((id, reference)),
            None => state.shrink_empty(),
        }
        self.refs_in_flight
            .store(state.refs.len(), Ordering::Release);
    }

    /// Answers input that could not be handled: an error frame naming
    /// `stream` (with the ref of the frame that caused it), or in strict mode
    /// a 1008 close with the code as reason.
    pub(crate) async fn send_error(
        &self,
        code: ErrorCode,
        message: &str,
        stream: Option<&str>,
        reference: Option<&str>,
    ) -> Result<(), SendError> {
        tracing::debug!(%code, message, stream, "frame not handled");
        crate::metrics::error_frame(code);
        if self.spec.config.strict {
            Box::pin(self.parent.close_with(close_code::POLICY, code.as_str())).await
        } else {
            let frame = error_frame_with(code.as_str(), message, stream, reference);
            self.parent.send_text(Text::known_json(frame)).await
        }
    }
}
