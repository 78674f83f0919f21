//! The per-connection side of a [`Demultiplexer`](super::Demultiplexer): it
//! starts the stream consumers, routes each frame and contains bad input.

use std::sync::Arc;

use chanmux_core::{Envelope, ErrorCode, MAX_ECHOED_NAME};
use futures_util::future::{BoxFuture, join_all};
use futures_util::stream::{FuturesUnordered, StreamExt};

use super::{Shared, Spec};
use crate::consumer::Event;
use crate::queue::{self, TrySendError};
use crate::router::NoRoute;
use crate::{BoxError, Consumer, Context, Start, Text};

/// The demultiplexer's own consumer: it routes frames when nested in
/// another demultiplexer (the outer one delivers them to its inbox) and
/// tells every stream of the disconnect. It never accepts itself: the
/// socket is accepted by the first stream that does (see Shared).
struct DemuxConsumer {
    router: Arc<Router>,
}

/// Routes frames to the stream consumers of one connection.
///
/// Routing never waits for a consumer (a full queue is answered
/// `stream_overloaded`), so when the demultiplexer owns the socket the
/// connection loop calls it directly, saving a hand-off per frame; nested in
/// a stream, the demultiplexer's own runner calls it.
pub(crate) struct Router {
    spec: Arc<Spec>,
    streams: Vec<Slot>,
    shared: Arc<Shared>,
}

struct Slot {
    ctx: Context,
    inbox: queue::Sender<Event>,
}

/// Starts a demultiplexer on one connection (or one stream of an outer
/// demultiplexer): its stream consumers run as futures inside the returned
/// future, not as tasks of their own, so an idle stream costs only its
/// consumer's state; dropping the future stops them all.
pub(super) fn start(spec: &Arc<Spec>, start: Start) -> BoxFuture<'static, ()> {
    let total = spec.declared.len();
    if total == 0 {
        // Nothing could ever accept.
        return start.run(NoRoute);
    }
    let shared = Arc::new(Shared::new(start.ctx.clone(), total, spec.config.strict));
    let mut slots = Vec::with_capacity(total);
    let streams = FuturesUnordered::new();
    for (index, factory) in spec.factories.iter().enumerate() {
        let (inbox, inbox_rx) = queue::bounded_bytes(
            spec.config.stream_queue_capacity,
            spec.config.stream_queue_bytes,
            Event::weight,
        );
        let ctx = Context::for_stream(
            spec.declared[index].clone(),
            shared.clone(),
            spec.layer.clone(),
            inbox.downgrade(),
        );
        // A child of the connection's span, which is entered here.
        let span = tracing::info_span!(target: crate::SPANS, "stream", stream = &*spec.declared[index].name);
        streams.push(factory.start(Start {
            ctx: ctx.clone(),
            inbox: inbox_rx,
            span,
        }));
        slots.push(Slot { ctx, inbox });
    }
    let router = Arc::new(Router {
        spec: spec.clone(),
        streams: slots,
        shared,
    });
    // Before any stream runs, so every frame finds it.
    start.ctx.set_router(&router);
    // In the same set as the streams, so each wake-up polls only the
    // futures that were woken.
    streams.push(start.run(DemuxConsumer { router }));
    Box::pin(streams.collect::<()>())
}

impl Router {
    /// Answers a frame that cannot be delivered (see [`Shared::send_error`]).
    ///
    /// Boxed: bad input is the rare path, and its future would otherwise
    /// enlarge the routing future the connection loop holds.
    pub(crate) async fn reject(&self, code: ErrorCode, message: &str, stream: Option<&str>) {
        // A send error means the client is gone; there is no one to tell.
        let _ = Box::pin(self.shared.send_error(code, message, stream)).await;
    }

    /// Routes one text frame: to its stream's queue, or an error frame back.
    pub(crate) async fn route_text(&self, text: Text) {
        let max = self.spec.config.max_frame_size;
        if text.len() > max {
            let message = format!(
                "frame of {} bytes exceeds the limit of {max} bytes",
                text.len()
            );
            self.reject(ErrorCode::FrameTooLarge, &message, None).await;
            return;
        }
        let (index, range) = match Envelope::parse(text.as_str()) {
            Ok(envelope) => match self.spec.index.get(envelope.stream()) {
                Some(&index) => (index, envelope.payload_range(text.as_str())),
                None => {
                    let stream = envelope.stream();
                    let message = if stream.len() <= MAX_ECHOED_NAME {
                        format!("no stream named {stream:?}")
                    } else {
                        format!("no stream has a name of {} bytes", stream.len())
                    };
                    self.reject(ErrorCode::UnknownStream, &message, Some(stream))
                        .await;
                    return;
                }
            },
            Err(e) => {
                self.reject(e.code(), &e.to_string(), e.stream()).await;
                return;
            }
        };
        let slot = &self.streams[index];
        if let Some(metrics) = slot.ctx.stream_metrics() {
            metrics.received.increment(1);
        }
        // A stream still in its connect handler may be about to accept (a
        // client may send as soon as the socket opens): its frames wait in
        // its queue, and reach it only if it accepts.
        let refusal = if !slot.ctx.is_accepted() && !slot.ctx.is_connecting() {
            ErrorCode::StreamNotAccepting
        } else {
            match slot.inbox.try_send(Event::Text(text.json_slice(range))) {
                Ok(()) => return,
                Err(TrySendError::Full(_)) => ErrorCode::StreamOverloaded,
                Err(TrySendError::Closed(_)) => ErrorCode::StreamNotAccepting,
            }
        };
        let name = &self.spec.declared[index].name;
        let message = match refusal {
            ErrorCode::StreamOverloaded => format!("stream {name:?} is overloaded; frame dropped"),
            _ => format!("stream {name:?} is not accepting frames"),
        };
        self.reject(refusal, &message, Some(name)).await;
    }

    /// Answers a binary frame: the multiplexed protocol is text only.
    pub(crate) async fn route_binary(&self) {
        let message = "binary frames are not supported; send JSON text";
        self.reject(ErrorCode::BinaryNotSupported, message, None)
            .await;
    }
}

impl Consumer for DemuxConsumer {
    async fn connect(&mut self, _ctx: &Context) -> Result<(), BoxError> {
        Ok(())
    }

    async fn receive_text(&mut self, _ctx: &Context, text: Text) -> Result<(), BoxError> {
        self.router.route_text(text).await;
        Ok(())
    }

    async fn receive_binary(
        &mut self,
        _ctx: &Context,
        _data: bytes::Bytes,
    ) -> Result<(), BoxError> {
        self.router.route_binary().await;
        Ok(())
    }

    async fn disconnect(&mut self, _ctx: &Context, code: u16) -> Result<(), BoxError> {
        let router = &self.router;
        // First stop every stream taking frames, so those still queued are
        // skipped and each stream goes straight on to its disconnect.
        for slot in &router.streams {
            slot.ctx.mark_disconnected();
        }
        // Every stream hears of it at once; a full queue delays only its own
        // stream. The connection's close timeout bounds the whole wait.
        // Their futures run beside this one and end after their disconnect.
        join_all(
            router
                .streams
                .iter()
                .map(|slot| slot.inbox.send(Event::Disconnect(code))),
        )
        .await;
        Ok(())
    }
}
