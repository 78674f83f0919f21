//! Serving one connection: the handshake, then the read loop, the writer
//! task and the teardown.
//!
//! [`start`] runs the consumer's connect and waits for its answer, so an HTTP
//! server can answer the upgrade request with 101 or with 403/500. On accept,
//! [`Accepted::serve`] drives any [`Transport`] until the connection ends.
//!
//! The consumer (for a demultiplexer: all its streams) runs inside these
//! futures, not in a task of its own: a frame is read, routed and handled
//! in one task, and only the writer is a second one.

mod config;
mod heartbeat;
mod rate;
mod writer;

use std::fmt;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chanmux_core::ErrorCode;
use chanmux_core::close_code;
use futures_util::future::BoxFuture;
use futures_util::{FutureExt, Sink, Stream, StreamExt};
use http::StatusCode;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep, timeout};
use tracing::{Instrument, Span};

pub use config::ConnectionConfig;

use crate::consumer::{Decision, Event, Input, Outbound};
use crate::limits::{Admission, OverLimit};
use crate::metrics;
use crate::queue::{self, TrySendError};
use crate::shutdown::Registration;
use crate::span::InSpan;
use crate::transport::{Frame, Transport, TransportError};
use crate::{ConsumerFactory, Context, Scope, Shutdown, Start};
use heartbeat::{Beat, Heartbeat};
use rate::FrameRate;
use writer::WriterEnd;

/// The consumer's answer to a connection attempt.
#[derive(Debug)]
pub enum Handshake {
    /// Accepted: complete the upgrade and call [`Accepted::serve`].
    Accepted(Accepted),
    /// Refused: answer the upgrade request with [`Refusal::status`].
    Refused(Refusal),
}

/// Why a connection was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// The consumer refused (or closed before accepting).
    Refused,
    /// The consumer did not answer within the connect timeout.
    TimedOut,
    /// The consumer failed in connect (returned an error or panicked).
    Failed,
    /// The request's `Origin` is not allowed ([`ConnectionConfig::origins`]).
    Origin,
    /// The server holds its maximum of connections ([`ConnectionConfig::limits`]).
    OverCapacity,
    /// The client's address holds its maximum of connections.
    TooManyFromAddress,
    /// The server is shutting down ([`ConnectionConfig::shutdown`] was triggered).
    ShuttingDown,
}

/// What a client refused for capacity is told to wait before trying again.
const RETRY_AFTER: Duration = Duration::from_secs(5);

impl Refusal {
    /// The HTTP status for the upgrade response: 403 (refused, timed out, or
    /// a foreign origin), 500 when the consumer failed, 503 over the
    /// connection limit or while shutting down, 429 over the per-address
    /// limit.
    pub fn status(self) -> StatusCode {
        match self {
            Refusal::Refused | Refusal::TimedOut | Refusal::Origin => StatusCode::FORBIDDEN,
            Refusal::Failed => StatusCode::INTERNAL_SERVER_ERROR,
            Refusal::OverCapacity | Refusal::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            Refusal::TooManyFromAddress => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    /// For the `Retry-After` header: how long to wait before trying again,
    /// when a limit or a shutdown refused the connection.
    pub fn retry_after(self) -> Option<Duration> {
        matches!(
            self,
            Refusal::OverCapacity | Refusal::TooManyFromAddress | Refusal::ShuttingDown
        )
        .then_some(RETRY_AFTER)
    }
}

/// An accepted connection, waiting for its socket.
///
/// Dropping it without calling [`serve`](Accepted::serve) (the upgrade
/// failed, say) tells the consumer the client is gone, as a disconnect would.
pub struct Accepted {
    subprotocol: Option<String>,
    /// `None` once handed to `serve`.
    /// Boxed: it is handed from the handshake to the socket's task, so a
    /// pointer moves instead of the whole set.
    parts: Option<Box<Parts>>,
}

struct Parts {
    ctx: Context,
    /// The consumer's lifecycle, partly run (through its accept).
    consumer: BoxFuture<'static, ()>,
    /// Where its frames go.
    input: Input,
    outbound: queue::Receiver<Outbound>,
    settings: Settings,
    registration: Option<Registration>,
    /// The connection's slot under [`ConnectionConfig::limits`].
    admission: Admission,
    /// Entered whenever the connection runs: its id, peer and path.
    span: Span,
}

/// The settings a connection still needs once accepted.
#[derive(Clone, Copy)]
struct Settings {
    close: Duration,
    slow_client: Duration,
    ping_interval: Duration,
    pong_timeout: Duration,
    max_frame_rate: u32,
}

/// Starts `app` for a new connection and waits (up to the connect timeout)
/// for it to accept or refuse.
///
/// First, before any consumer starts, the request's origin is checked
/// against [`ConnectionConfig::origins`] and the connection takes a slot
/// under [`ConnectionConfig::limits`]; either can refuse it.
///
/// The consumer runs inside this future until it decides, then inside
/// [`Accepted::serve`]. Must be called within a Tokio runtime (a refused
/// consumer finishes its disconnect in a task of its own).
///
/// # Cancel safety
///
/// Dropping the future stops the consumer.
pub async fn start(
    app: &dyn ConsumerFactory,
    scope: Scope,
    config: &ConnectionConfig,
) -> Handshake {
    let span = tracing::info_span!(
        target: crate::SPANS,
        "connection",
        id = NEXT_ID.fetch_add(1, Ordering::Relaxed),
        peer = scope.client.map(tracing::field::display),
        path = %scope.path,
    );
    start_in(app, scope, config, span.clone())
        .instrument(span)
        .await
}

/// Numbers connections for their spans, from 1.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The body of [`start`], inside the connection's span.
async fn start_in(
    app: &dyn ConsumerFactory,
    scope: Scope,
    config: &ConnectionConfig,
    span: Span,
) -> Handshake {
    if config.shutdown.as_ref().is_some_and(Shutdown::is_triggered) {
        tracing::debug!(path = %scope.path, "shutting down; refusing");
        return refuse(Refusal::ShuttingDown);
    }
    if let Err(origin) = config.origins.check(&scope.headers) {
        tracing::debug!(origin = %String::from_utf8_lossy(origin), path = %scope.path, "origin not allowed; refusing");
        return refuse(Refusal::Origin);
    }
    let admission = match config.limits.admit(&scope) {
        Ok(admission) => admission,
        Err(over) => {
            let client = config.limits.client_address(&scope);
            tracing::debug!(?client, ?over, "connection limit reached; refusing");
            return refuse(match over {
                OverLimit::Total => Refusal::OverCapacity,
                OverLimit::Address => Refusal::TooManyFromAddress,
            });
        }
    };
    let (decision_tx, decision_rx) = oneshot::channel();
    let (outbound_tx, outbound) = queue::bounded_bytes(
        config.outbound_capacity,
        config.outbound_bytes,
        Outbound::weight,
    );
    let (inbox, inbox_rx) =
        queue::bounded_bytes(config.inbox_capacity, config.inbox_bytes, Event::weight);
    let ctx = Context::for_socket(
        Arc::new(scope),
        outbound_tx,
        decision_tx,
        config.layer.clone(),
        inbox.downgrade(),
    );
    let started = app.start(Start {
        ctx: ctx.clone(),
        inbox,
        inbox_rx,
        // It runs inside the connection's future, in the connection's span.
        span: tracing::Span::none(),
    });
    let input = started.input;
    let mut consumer = Some(started.future);
    let mut decision_rx = decision_rx;
    let decided = timeout(config.connect_timeout, async {
        tokio::select! {
            decision = &mut decision_rx => decision.ok(),
            () = poll_some(&mut consumer) => {
                // It ended (failed in connect, say): its decision, if any,
                // was sent just before.
                consumer = None;
                decision_rx.try_recv().ok()
            }
        }
    })
    .await;
    let refusal = match decided {
        Ok(Some(Decision::Accept(subprotocol))) => {
            metrics::connection("accepted");
            return Handshake::Accepted(Accepted {
                subprotocol,
                parts: Some(Box::new(Parts {
                    ctx,
                    // A consumer that accepted and ended at once (closed in
                    // connect) is done; an empty future stands in for it.
                    consumer: consumer.unwrap_or_else(|| Box::pin(async {})),
                    input,
                    outbound,
                    settings: Settings {
                        close: config.close_timeout,
                        slow_client: config.slow_client_timeout,
                        ping_interval: config.ping_interval,
                        pong_timeout: config.pong_timeout,
                        max_frame_rate: config.max_frame_rate,
                    },
                    registration: config.shutdown.as_ref().map(|s| s.register()),
                    admission,
                    span,
                })),
            });
        }
        Ok(Some(Decision::Refuse)) => Refusal::Refused,
        Ok(Some(Decision::Fail)) | Ok(None) => Refusal::Failed,
        Err(_) => Refusal::TimedOut,
    };
    // As in ASGI, a refused consumer still hears that the client is gone.
    tokio::spawn(
        finish(
            ctx,
            consumer,
            input,
            close_code::ABNORMAL,
            config.close_timeout,
        )
        .instrument(span),
    );
    refuse(refusal)
}

/// Counts a refusal by its outcome label, and returns it.
fn refuse(refusal: Refusal) -> Handshake {
    metrics::connection(match refusal {
        Refusal::Refused => "refused",
        Refusal::TimedOut => "timed_out",
        Refusal::Failed => "failed",
        Refusal::Origin => "origin_refused",
        Refusal::OverCapacity | Refusal::TooManyFromAddress => "over_limit",
        Refusal::ShuttingDown => "shutting_down",
    });
    Handshake::Refused(refusal)
}

impl Accepted {
    /// The subprotocol the consumer chose, to put in the upgrade response.
    pub fn subprotocol(&self) -> Option<&str> {
        self.subprotocol.as_deref()
    }

    /// Runs the connection over `transport` until it ends: delivers incoming
    /// messages to the consumer, sends what it sends, and tears down (the
    /// consumer's disconnect, bounded by the close timeout) at the end.
    ///
    /// The transport is split before the returned future starts, so that
    /// future holds two small halves rather than the whole transport (an
    /// `async fn` keeps its arguments for its whole life, and this future
    /// lives as long as the connection).
    ///
    /// Dropping the returned future stops the consumer at once (its
    /// disconnect handler is not called).
    pub fn serve<T: Transport>(
        mut self,
        transport: T,
    ) -> impl Future<Output = ()> + Send + 'static {
        let Parts {
            ctx,
            consumer,
            input,
            outbound,
            settings,
            registration,
            admission,
            span,
        } = *self.parts.take().expect("serve is called once");
        InSpan::new(
            span,
            serve(
                ctx,
                consumer,
                input,
                outbound,
                settings,
                (registration, admission),
                transport.split(),
            ),
        )
    }
}

/// The body of [`Accepted::serve`]. Takes each part as an argument and uses
/// it in place: an `async fn` keeps its arguments for its whole life, so
/// destructuring a struct argument would store every field twice.
async fn serve<S, R>(
    ctx: Context,
    consumer: BoxFuture<'static, ()>,
    input: Input,
    outbound: queue::Receiver<Outbound>,
    settings: Settings,
    (mut registration, admission): (Option<Registration>, Admission),
    (sink, mut frames): (S, R),
) where
    S: Sink<Frame, Error = TransportError> + Send + Unpin + 'static,
    R: Stream<Item = Result<Frame, TransportError>> + Send + Unpin + 'static,
{
    let open = metrics::OpenConnection::new();
    let (stop_tx, stop_rx) = oneshot::channel();
    let mut writer = tokio::spawn(writer::run(sink, outbound, stop_rx, settings.slow_client));
    let mut writer_done = false;
    let mut shutting_down = false;
    // `None` once the consumer's lifecycle has ended.
    let mut consumer = Some(consumer);
    // A message read but not yet taken by the consumer's full inbox.
    // While one waits, nothing more is read: TCP then slows the client.
    // Boxed: it is rare, and inline it would cost every connection.
    let mut pending: Option<Box<Event>> = None;
    // An answer to the client's last frame (an error frame, a pong, ...)
    // waiting for room in the outbound queue. It is polled as a branch of
    // its own, never awaited inside the frame branch: the consumer, polled
    // beside it, may be waiting for the same room. Nothing more is read
    // until it is sent.
    let mut answer: Option<BoxFuture<'static, ()>> = None;
    let mut rate = FrameRate::new(settings.max_frame_rate);
    let mut heartbeat = Heartbeat::new(settings.ping_interval, settings.pong_timeout);
    // Anything arrived since the heartbeat's timer last fired.
    let mut heard = false;
    let code = {
        let mut shutdown = pin!(async {
            match registration.as_mut() {
                Some(r) => r.triggered().await,
                None => std::future::pending().await,
            }
        });
        let mut beat = pin!(sleep(heartbeat.map_or(Duration::MAX, |h| h.first())));
        loop {
            // In this order: the consumer handles what was routed to it
            // before the next frame is read (so one stream's burst does not
            // fill its queue first), and the rarely ready branches are polled
            // only once nothing else is ready, not once per frame.
            tokio::select! {
                biased;
                () = poll_some(&mut consumer), if consumer.is_some() => consumer = None,
                permit = reserve(&input), if pending.is_some() => match permit {
                    Ok(permit) => permit.send(*pending.take().expect("checked by the guard")),
                    Err(_) => break close_code::ABNORMAL,
                },
                () = poll_some(&mut answer), if answer.is_some() => answer = None,
                frame = frames.next(), if pending.is_none() && answer.is_none() => {
                    let frame = match frame {
                        Some(Ok(frame)) => frame,
                        Some(Err(e)) => match e.close_code() {
                            // The client's fault: tell it why (RFC 6455).
                            Some((code, reason)) => {
                                tracing::debug!(error = %e, code, "client broke the protocol or a limit");
                                Box::pin(last_words(&ctx, &mut writer, code, reason, settings.close)).await;
                                writer_done = true;
                                break code;
                            }
                            None => {
                                tracing::debug!(error = %e, "transport failed");
                                break close_code::ABNORMAL;
                            }
                        },
                        None => break close_code::ABNORMAL,
                    };
                    heard = true;
                    let data = matches!(frame, Frame::Text(_) | Frame::Binary(_));
                    if data && rate.as_mut().is_some_and(|rate| !rate.allow()) {
                        answer = Some(over_rate(&ctx, &input, settings.max_frame_rate));
                        continue;
                    }
                    let event = match (frame, &input) {
                        // A demultiplexer routes each frame straight to its
                        // stream; frames after its socket closed are dropped.
                        (Frame::Text(text), Input::Demux(demux)) => {
                            if ctx.is_accepted() {
                                answer = demux.route_text(text);
                            }
                            continue;
                        }
                        (Frame::Binary(_), Input::Demux(demux)) => {
                            if ctx.is_accepted() {
                                answer = Some(demux.route_binary());
                            }
                            continue;
                        }
                        (Frame::Text(text), _) => Event::Text(text, None),
                        (Frame::Binary(data), _) => Event::Binary(data),
                        (Frame::Close(frame), _) => {
                            break frame.map_or(close_code::NO_STATUS, |f| f.code);
                        }
                        (Frame::Ping(_) | Frame::Pong(_), _) => continue,
                    };
                    if let Input::Queue(inbox) = &input
                        && let Err(TrySendError::Full(event)) = inbox.try_send(event)
                    {
                        pending = Some(Box::new(event));
                    }
                }
                end = &mut writer, if !writer_done => {
                    writer_done = true;
                    break match end {
                        Ok(WriterEnd::Closed) => {
                            Box::pin(close_reply(&mut frames, settings.close)).await
                        }
                        Ok(WriterEnd::SlowClient) => {
                            metrics::slow_client();
                            close_code::AGAIN
                        }
                        _ => close_code::ABNORMAL,
                    };
                }
                () = &mut beat, if heartbeat.is_some() => {
                    let next = match heartbeat.as_mut().map(|h| h.fire(std::mem::take(&mut heard))) {
                        Some(Beat::Wait(next)) => next,
                        Some(Beat::Ping(next)) => {
                            ctx.try_send_ping();
                            next
                        }
                        _ => {
                            tracing::debug!("no answer to a ping; ending the connection");
                            metrics::ping_timeout();
                            Box::pin(last_words(&ctx, &mut writer, close_code::AWAY, "ping timeout", LAST_WORDS)).await;
                            writer_done = true;
                            break close_code::ABNORMAL;
                        }
                    };
                    beat.as_mut().reset(Instant::now() + next);
                }
                () = &mut shutdown, if !shutting_down => {
                    shutting_down = true;
                    let _ = Box::pin(ctx.close_with(close_code::AWAY, "server shutting down")).await;
                }
            }
        }
    };
    metrics::disconnect(code);
    let _ = stop_tx.send(());
    // Boxed, like the other once-per-connection steps: this future lives
    // as long as the connection, and its size is that of its largest step.
    Box::pin(finish(ctx, consumer, input, code, settings.close)).await;
    if !writer_done
        && Box::pin(timeout(settings.close, &mut writer))
            .await
            .is_err()
    {
        writer.abort();
    }
    drop((registration, admission, open));
}

/// How long a client that is being dropped (it stopped answering pings)
/// gets for its close frame.
const LAST_WORDS: Duration = Duration::from_secs(1);

/// Sends a close frame if there is room for it, then gives the writer up to
/// `wait` to send it before stopping it.
async fn last_words(
    ctx: &Context,
    writer: &mut JoinHandle<WriterEnd>,
    code: u16,
    reason: &str,
    wait: Duration,
) {
    // Never waits for room: a full queue means the client is not reading.
    let _ = ctx.close_with(code, reason).now_or_never();
    if timeout(wait, &mut *writer).await.is_err() {
        writer.abort();
    }
}

/// Answers a frame over the rate limit (it is dropped): with a
/// demultiplexer's error frame (or its strict close), else an error frame
/// from the socket.
fn over_rate(ctx: &Context, input: &Input, limit: u32) -> BoxFuture<'static, ()> {
    tracing::debug!(limit, "frame over the rate limit; dropped");
    let message = format!("more than {limit} frames per second; frame dropped");
    match input {
        Input::Demux(demux) => demux.answer(ErrorCode::RateLimited, message, None, None),
        Input::Queue(_) => {
            let ctx = ctx.clone();
            Box::pin(async move {
                let _ = ctx.send_error(ErrorCode::RateLimited, &message).await;
            })
        }
    }
}

/// Waits for room in a plain consumer's full inbox (a demultiplexer never
/// leaves a frame pending).
async fn reserve(input: &Input) -> Result<queue::Permit<'_, Event>, queue::Closed<()>> {
    match input {
        Input::Queue(inbox) => inbox.reserve().await,
        Input::Demux(_) => std::future::pending().await,
    }
}

impl Drop for Accepted {
    fn drop(&mut self) {
        let Some(parts) = self.parts.take() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(
                    finish(
                        parts.ctx,
                        Some(parts.consumer),
                        parts.input,
                        close_code::ABNORMAL,
                        parts.settings.close,
                    )
                    .instrument(parts.span),
                );
            }
            // No runtime to finish it in: dropping it stops it.
            Err(_) => {
                parts.ctx.disconnected(close_code::ABNORMAL);
                drop(parts.consumer);
            }
        }
    }
}

/// After the server sent a close frame: waits for the client's reply and
/// returns its code. Data frames that arrive meanwhile are dropped.
async fn close_reply<S>(frames: &mut S, wait: Duration) -> u16
where
    S: Stream<Item = Result<Frame, TransportError>> + Unpin,
{
    let reply = async {
        while let Some(frame) = frames.next().await {
            match frame {
                Ok(Frame::Close(frame)) => return frame.map_or(close_code::NO_STATUS, |f| f.code),
                Ok(_) => continue,
                Err(_) => break,
            }
        }
        close_code::ABNORMAL
    };
    timeout(wait, reply).await.unwrap_or(close_code::ABNORMAL)
}

/// Polls a boxed future (the consumer's lifecycle, an answer) while there
/// is one; pending forever once it has ended (`None`), so a `select!`
/// branch guarded on `is_some` can use it.
async fn poll_some(future: &mut Option<BoxFuture<'static, ()>>) {
    match future {
        Some(running) => running.await,
        None => std::future::pending().await,
    }
}

/// Tells the consumer the client is gone (with `code`) and runs it for up
/// to `wait` to finish; then drops it, which stops it (and a
/// demultiplexer's streams).
async fn finish(
    ctx: Context,
    consumer: Option<BoxFuture<'static, ()>>,
    input: Input,
    code: u16,
    wait: Duration,
) {
    // From here on the consumer sees the client gone: what is still queued
    // for it is skipped and its disconnect comes next.
    ctx.disconnected(code);
    if let Input::Demux(demux) = &input {
        demux.disconnect(code);
    }
    drop(input);
    let done = async move {
        if let Some(consumer) = consumer {
            consumer.await;
        }
    };
    if timeout(wait, done).await.is_err() {
        tracing::warn!(
            ?wait,
            "consumer did not finish disconnecting in time; stopping it"
        );
    }
}

impl fmt::Debug for Accepted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Accepted")
            .field("subprotocol", &self.subprotocol)
            .finish_non_exhaustive()
    }
}
