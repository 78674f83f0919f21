//! The per-connection side of a [`Demultiplexer`](super::Demultiplexer): it
//! starts the stream consumers, routes each frame and contains bad input.

use std::sync::Arc;

use chanmux_core::{Envelope, ErrorCode};
use futures_util::future::join_all;
use tokio::sync::mpsc::{self, error::TrySendError};
use tokio::task::JoinSet;

use super::{Shared, Spec};
use crate::consumer::Event;
use crate::{BoxError, Consumer, Context, Start, Text};

pub(super) struct DemuxConsumer {
    spec: Arc<Spec>,
    /// Set in connect.
    router: Option<Arc<Router>>,
    /// Owns the stream tasks: dropping the demultiplexer aborts them.
    tasks: JoinSet<()>,
}

/// Routes frames to the stream consumers of one connection.
///
/// Routing never waits for a consumer (a full queue is answered
/// `stream_overloaded`), so when the demultiplexer owns the socket the
/// connection loop calls it directly, saving a hand-off per frame; nested in
/// a stream, the demultiplexer's own task calls it.
pub(crate) struct Router {
    spec: Arc<Spec>,
    streams: Vec<Slot>,
    shared: Arc<Shared>,
}

struct Slot {
    ctx: Context,
    inbox: mpsc::Sender<Event>,
}

impl DemuxConsumer {
    pub(super) fn new(spec: Arc<Spec>) -> Self {
        DemuxConsumer {
            spec,
            router: None,
            tasks: JoinSet::new(),
        }
    }
}

impl Router {
    /// Answers a frame that cannot be delivered (see [`Shared::send_error`]).
    async fn reject(&self, code: ErrorCode, message: &str, stream: Option<&str>) {
        // A send error means the client is gone; there is no one to tell.
        let _ = self.shared.send_error(code, message, stream).await;
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
                    let message = format!("no stream named {stream:?}");
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
        let name = &self.spec.names[index];
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
    async fn connect(&mut self, ctx: &Context) -> Result<(), BoxError> {
        let total = self.spec.names.len();
        if total == 0 {
            ctx.refuse();
            return Ok(());
        }
        let shared = Arc::new(Shared::new(ctx.clone(), total, self.spec.config.strict));
        let mut streams = Vec::with_capacity(total);
        let mut starts = Vec::with_capacity(total);
        for name in &self.spec.names {
            let (inbox, inbox_rx) = mpsc::channel(self.spec.config.stream_queue_capacity);
            let child = Context::for_stream(name.clone(), shared.clone(), self.spec.layer.clone());
            starts.push(Start {
                ctx: child.clone(),
                inbox: inbox_rx,
                inbox_tx: inbox.downgrade(),
            });
            streams.push(Slot { ctx: child, inbox });
        }
        let router = Arc::new(Router {
            spec: self.spec.clone(),
            streams,
            shared,
        });
        // Before any stream can accept, so every frame finds it.
        ctx.set_router(&router);
        self.router = Some(router);
        for (start, factory) in starts.into_iter().zip(&self.spec.factories) {
            self.tasks.spawn(factory.start(start));
        }
        // The socket is accepted by the first stream that accepts (see Shared).
        Ok(())
    }

    async fn receive_text(&mut self, _ctx: &Context, text: Text) -> Result<(), BoxError> {
        if let Some(router) = &self.router {
            router.route_text(text).await;
        }
        Ok(())
    }

    async fn receive_binary(
        &mut self,
        _ctx: &Context,
        _data: bytes::Bytes,
    ) -> Result<(), BoxError> {
        if let Some(router) = &self.router {
            router.route_binary().await;
        }
        Ok(())
    }

    async fn disconnect(&mut self, _ctx: &Context, code: u16) -> Result<(), BoxError> {
        let Some(router) = &self.router else {
            return Ok(());
        };
        // First stop every stream taking frames, so those still queued are
        // skipped and each stream goes straight on to its disconnect.
        for slot in &router.streams {
            slot.ctx.mark_disconnected();
        }
        // Every stream hears of it at once; a full queue delays only its own
        // stream. The connection's close timeout bounds the whole wait.
        join_all(
            router
                .streams
                .iter()
                .map(|slot| slot.inbox.send(Event::Disconnect(code))),
        )
        .await;
        while self.tasks.join_next().await.is_some() {}
        Ok(())
    }
}
