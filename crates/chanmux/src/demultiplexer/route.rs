//! Routing the client's frames (PROTOCOL.md): a data frame to its stream's
//! input, a subscribe or unsubscribe to the stream table, a ping back as a
//! pong; and bad input to an error frame.

use std::sync::Arc;

use futures_util::future::BoxFuture;

use chanmux_core::{
    ClientFrame, ErrorCode, MAX_ECHOED_NAME, Ref, pong_frame, subscribed_frame, unsubscribed_frame,
};

use super::session::{Found, Running, State};
use super::{OnDemand, Session};
use crate::Text;
use crate::consumer::{Event, Input, Unsubscribed};
use crate::queue::TrySendError;

/// What became of a data frame, decided under the table's lock.
enum Routed {
    Delivered,
    /// For a nested demultiplexer, routed once the lock is released.
    Nested(Arc<Session>, Text),
    /// Answered with this code and message, naming this stream.
    Refused(ErrorCode, String, String),
}

/// Hands a data frame's payload to a running stream.
fn hand_over(running: &mut Running, payload: Text, reference: Option<Ref>) -> Routed {
    let ctx = &running.ctx;
    let name = || ctx.stream().unwrap_or_default();
    // A stream still in its connect handler may be about to accept (a
    // client may send as soon as the socket opens): its frames wait in
    // its queue, and reach it only if it accepts.
    if !ctx.is_accepted() && !ctx.is_connecting() {
        return not_accepting(name());
    }
    if let Some(metrics) = ctx.stream_metrics() {
        metrics.received.increment(1);
    }
    match &running.input {
        Input::Queue(inbox) => match inbox.try_send(Event::Text(payload, reference)) {
            Ok(()) => Routed::Delivered,
            Err(TrySendError::Full(_)) => Routed::Refused(
                ErrorCode::StreamOverloaded,
                format!("stream {:?} is overloaded; frame dropped", name()),
                name().to_owned(),
            ),
            Err(TrySendError::Closed(_)) => not_accepting(name()),
        },
        Input::Demux(inner) => Routed::Nested(inner.clone(), payload),
    }
}

impl Session {
    /// Answers a frame that cannot be handled (see [`Session::send_error`]).
    pub(crate) async fn reject(
        &self,
        code: ErrorCode,
        message: &str,
        stream: Option<&str>,
        reference: Option<&str>,
    ) {
        // A send error means the client is gone; there is no one to tell.
        let _ = Box::pin(self.send_error(code, message, stream, reference)).await;
    }

    /// Routes one text frame from the client. A frame handed to its
    /// stream's queue (the common case) needs nothing more; whatever is
    /// left to do (an answer to send, a route through a nested
    /// demultiplexer, a subscribe) comes back as a boxed future, so the
    /// connection loop that awaits it holds a pointer, not that future's
    /// state, for every connection's whole life.
    pub(crate) fn route_text(self: &Arc<Self>, text: Text) -> Option<BoxFuture<'static, ()>> {
        let max = self.spec.config.max_frame_size;
        if text.len() > max {
            let message = format!(
                "frame of {} bytes exceeds the limit of {max} bytes",
                text.len()
            );
            return Some(self.answer(ErrorCode::FrameTooLarge, message, None, None));
        }
        let frame = match ClientFrame::parse(text.as_str()) {
            Ok(frame) => frame,
            Err(rejected) => {
                let error = rejected.error;
                let stream = error.stream().map(str::to_owned);
                let reference = rejected.reference.map(str::to_owned);
                return Some(self.answer(error.code(), error.to_string(), stream, reference));
            }
        };
        let range = frame.payload_range(text.as_str());
        // Cloned only by the rare kinds below: a data frame costs no count.
        let session = || self.clone();
        match frame {
            ClientFrame::Data {
                stream, reference, ..
            } => {
                let reference = reference.map(Ref::from_parsed);
                let range = range.expect("a data frame has a payload");
                let routed = {
                    let mut state = self.state();
                    match self.locate(&mut state, &stream) {
                        Err(refused) => refused,
                        // The name is not needed past here, so the frame
                        // can move into its payload.
                        Ok(running) => {
                            hand_over(running, text.json_slice(range), reference.clone())
                        }
                    }
                };
                match routed {
                    Routed::Delivered => None,
                    Routed::Nested(inner, payload) => inner.route_text(payload),
                    Routed::Refused(code, message, name) => {
                        let reference = reference.map(|r| r.as_json().to_owned());
                        Some(self.answer(code, message, Some(name), reference))
                    }
                }
            }
            ClientFrame::Subscribe {
                stream,
                params,
                reference,
            } => {
                let (stream, params) = (stream.into_owned(), params.map(str::to_owned));
                let reference = reference.map(str::to_owned);
                let session = session();
                Some(Box::pin(async move {
                    session
                        .subscribe(&stream, params.as_deref(), reference.as_deref())
                        .await;
                }))
            }
            ClientFrame::Unsubscribe { stream, reference } => self.unsubscribe(&stream, reference),
            ClientFrame::Ping { value } => {
                let pong = Text::known_json(pong_frame(value));
                let session = session();
                Some(Box::pin(async move {
                    let _ = session.parent().send_text(pong).await;
                }))
            }
        }
    }

    /// Answers a frame that could not be handled, later (see [`route_text`](Self::route_text)).
    pub(crate) fn answer(
        self: &Arc<Self>,
        code: ErrorCode,
        message: String,
        stream: Option<String>,
        reference: Option<String>,
    ) -> BoxFuture<'static, ()> {
        let session = self.clone();
        Box::pin(async move {
            session
                .reject(code, &message, stream.as_deref(), reference.as_deref())
                .await;
        })
    }

    /// Answers a binary frame: the multiplexed protocol is text only.
    pub(crate) fn route_binary(self: &Arc<Self>) -> BoxFuture<'static, ()> {
        let message = "binary frames are not supported; send JSON text";
        self.answer(
            ErrorCode::BinaryNotSupported,
            message.to_owned(),
            None,
            None,
        )
    }

    /// The running stream a data frame for `name` goes to, starting a lazy
    /// or pattern stream that is not running (the implicit subscribe: the
    /// frame waits in its queue for its consumer to accept).
    fn locate<'s>(
        self: &Arc<Self>,
        state: &'s mut State,
        name: &str,
    ) -> Result<&'s mut Running, Routed> {
        // A running named stream (the path of most frames) costs one
        // lookup; the table is indexed again only after starting one.
        if let Some(&index) = self.spec.index.get(name) {
            if state.named[index].is_none() {
                if !self.spec.entries[index].starts_on_demand() {
                    return Err(not_accepting(name));
                }
                self.start_on_demand(state, index, name, None, false)
                    .map_err(|(code, message)| Routed::Refused(code, message, name.to_owned()))?;
            }
            return Ok(state.named[index].as_mut().expect("the stream is running"));
        }
        if !state.matched.contains_key(name) {
            let Some(index) = self.matching_pattern(name) else {
                let message = no_such_stream(name);
                return Err(Routed::Refused(
                    ErrorCode::UnknownStream,
                    message,
                    name.to_owned(),
                ));
            };
            self.start_on_demand(state, index, name, None, false)
                .map_err(|(code, message)| Routed::Refused(code, message, name.to_owned()))?;
        }
        Ok(state.matched.get_mut(name).expect("the stream is running"))
    }

    /// Starts entry `index` as stream `name` for the client, within
    /// `max_streams`.
    fn start_on_demand(
        self: &Arc<Self>,
        state: &mut State,
        index: usize,
        name: &str,
        params: Option<&str>,
        subscribed: bool,
    ) -> Result<u32, (ErrorCode, String)> {
        let max = self.spec.config.max_streams;
        if state.disconnected {
            let message = format!("stream {} is not accepting frames", describe(name));
            return Err((ErrorCode::StreamNotAccepting, message));
        }
        if usize::try_from(state.on_demand).is_ok_and(|running| running >= max) {
            let message = format!(
                "at most {max} streams may be started per connection; unsubscribe from one first"
            );
            return Err((ErrorCode::TooManyStreams, message));
        }
        let captures = self.spec.entries[index].captures(name);
        let on_demand = Box::new(OnDemand::new(name, captures, params));
        let (id, ctx) = self.start_stream(state, index, Some(on_demand), subscribed);
        // Bounds how long its queue may hold frames before it decides.
        self.time_decision(state, id, ctx);
        Ok(id)
    }

    /// `{"subscribe": name}`: starts the stream, or subscribes the client to
    /// the one running; `subscribed` follows once it has accepted.
    async fn subscribe(
        self: &Arc<Self>,
        name: &str,
        params: Option<&str>,
        reference: Option<&str>,
    ) {
        let max = self.spec.config.max_params_size;
        if let Some(params) = params.filter(|p| p.len() > max) {
            let message = format!(
                "params of {} bytes exceed the limit of {max} bytes",
                params.len()
            );
            self.reject(ErrorCode::FrameTooLarge, &message, Some(name), reference)
                .await;
            return;
        }
        let owned_ref = reference.map(Ref::from_parsed);
        let outcome = {
            let mut state = self.state();
            match self.find(&mut state, name) {
                Found::Running(running) if running.subscribed => Err((
                    ErrorCode::AlreadySubscribed,
                    format!("already subscribed to {}", describe(name)),
                )),
                Found::Running(running) => {
                    running.subscribed = true;
                    let (id, accepted, ctx) = (running.id, running.accepted, running.ctx.clone());
                    if !accepted {
                        Session::owe(&mut state, id, name, owned_ref);
                        self.time_decision(&mut state, id, ctx);
                    }
                    Ok(accepted)
                }
                Found::Stopped(index) | Found::Matches(index) => self
                    .start_on_demand(&mut state, index, name, params, true)
                    .map(|id| {
                        Session::owe(&mut state, id, name, owned_ref);
                        false
                    }),
                Found::Unknown => Err((ErrorCode::UnknownStream, no_such_stream(name))),
            }
        };
        match outcome {
            // Already accepted: subscribed now.
            Ok(true) => {
                let frame = subscribed_frame(name, reference);
                let _ = self.parent().send_text(Text::known_json(frame)).await;
            }
            // Answered when the consumer decides.
            Ok(false) => {}
            Err((code, message)) => {
                self.reject(code, &message, Some(name), reference).await;
            }
        }
    }

    /// `{"unsubscribe": name}`: takes the running stream out of the table
    /// now; stopping it (its consumer hears `disconnect` with 1000) and the
    /// answers (`subscription_refused` for a subscribe still waiting for it,
    /// then `unsubscribed`) run in the driver. Stopping may wait for the
    /// consumer's accept to finish, which only the driver can run: awaited
    /// in the connection loop, it would stall it for good.
    fn unsubscribe(
        self: &Arc<Self>,
        name: &str,
        reference: Option<&str>,
    ) -> Option<BoxFuture<'static, ()>> {
        let mut state = self.state();
        let id = match self.find(&mut state, name) {
            Found::Running(running) => running.id,
            _ => {
                drop(state);
                let message = format!("not subscribed to {}", describe(name));
                return Some(self.answer(
                    ErrorCode::NotSubscribed,
                    message,
                    Some(name.to_owned()),
                    reference.map(str::to_owned),
                ));
            }
        };
        let owed = Session::forgive(&mut state, id);
        let running = self.take(&mut state, name, id).expect("found above");
        let (session, name, reference) =
            (self.clone(), name.to_owned(), reference.map(str::to_owned));
        self.run_in_driver(&mut state, async move {
            if let Some(owed) = owed {
                let message = format!("unsubscribed from {name:?} before it accepted");
                let owed = owed.as_ref().map(Ref::as_json);
                session
                    .reject(ErrorCode::SubscriptionRefused, &message, Some(&name), owed)
                    .await;
            }
            match running.ctx.unsubscribed().await {
                Unsubscribed::FromOpen => session.stream_unsubscribed(true),
                Unsubscribed::FromPending => session.stream_unsubscribed(false),
                Unsubscribed::AlreadyEnded => {}
            }
            if let Input::Demux(inner) = &running.input {
                inner.disconnect(chanmux_core::close_code::NORMAL);
            }
            drop(running);
            let frame = unsubscribed_frame(&name, reference.as_deref());
            let _ = session.parent().send_text(Text::known_json(frame)).await;
        });
        None
    }
}

/// The message of `unknown_stream`, for a data frame or a subscribe.
fn no_such_stream(name: &str) -> String {
    if name.len() <= MAX_ECHOED_NAME {
        format!("no stream named {name:?}")
    } else {
        format!("no stream has a name of {} bytes", name.len())
    }
}

/// A client's stream name for a message: quoted, or only its length when it
/// is too long to echo (see [`MAX_ECHOED_NAME`]).
fn describe(name: &str) -> String {
    if name.len() <= MAX_ECHOED_NAME {
        format!("{name:?}")
    } else {
        format!("a name of {} bytes", name.len())
    }
}

fn not_accepting(name: &str) -> Routed {
    Routed::Refused(
        ErrorCode::StreamNotAccepting,
        format!("stream {name:?} is not accepting frames"),
        name.to_owned(),
    )
}
