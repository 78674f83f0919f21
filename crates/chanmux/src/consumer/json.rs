//! [`JsonConsumer`]: a consumer that speaks typed JSON.

use std::future::Future;

use bytes::Bytes;
use chanmux_core::Message;
use serde::de::DeserializeOwned;

use crate::{BoxError, Consumer, Context, ErrorCode, Text};

/// A consumer that receives parsed JSON, like Channels' `AsyncJsonWebsocketConsumer`.
///
/// Every `JsonConsumer` is a [`Consumer`]: text is parsed into
/// [`Message`](JsonConsumer::Message) (use [`serde_json::Value`] for any JSON)
/// before [`receive_json`](JsonConsumer::receive_json) is called. Send with
/// [`Context::send_json`].
///
/// ```
/// use chanmux::{BoxError, Context, JsonConsumer};
/// use serde::Deserialize;
///
/// #[derive(Deserialize)]
/// struct Greeting { name: String }
///
/// struct Greeter;
///
/// impl JsonConsumer for Greeter {
///     type Message = Greeting;
///     async fn receive_json(&mut self, ctx: &Context, msg: Greeting) -> Result<(), BoxError> {
///         ctx.send_json(&serde_json::json!({"hello": msg.name})).await?;
///         Ok(())
///     }
/// }
/// ```
pub trait JsonConsumer: Send + 'static {
    /// The type incoming messages are parsed into.
    type Message: DeserializeOwned + Send;

    /// The client connected. The default accepts.
    fn connect(&mut self, ctx: &Context) -> impl Future<Output = Result<(), BoxError>> + Send {
        async move {
            ctx.accept().await?;
            Ok(())
        }
    }

    /// A message arrived and parsed.
    fn receive_json(
        &mut self,
        ctx: &Context,
        message: Self::Message,
    ) -> impl Future<Output = Result<(), BoxError>> + Send;

    /// A message did not parse as [`Message`](JsonConsumer::Message) (wrong
    /// shape, or nested deeper than serde_json's limit of 128). The default
    /// answers with an `invalid_json` error frame naming the stream (see
    /// [`Context::send_error`]) and carries on.
    fn invalid_json(
        &mut self,
        ctx: &Context,
        error: serde_json::Error,
    ) -> impl Future<Output = Result<(), BoxError>> + Send {
        async move {
            let message = format!("payload not understood: {error}");
            ctx.send_error(ErrorCode::InvalidJson, &message).await?;
            Ok(())
        }
    }

    /// A message from the channel layer (see [`Consumer::event`]).
    fn event(
        &mut self,
        ctx: &Context,
        message: Message,
    ) -> impl Future<Output = Result<(), BoxError>> + Send {
        let _ = (ctx, message);
        async { Ok(()) }
    }

    /// The client disconnected with `code`.
    fn disconnect(
        &mut self,
        ctx: &Context,
        code: u16,
    ) -> impl Future<Output = Result<(), BoxError>> + Send {
        let _ = (ctx, code);
        async { Ok(()) }
    }
}

impl<T: JsonConsumer> Consumer for T {
    async fn connect(&mut self, ctx: &Context) -> Result<(), BoxError> {
        JsonConsumer::connect(self, ctx).await
    }

    async fn receive_text(&mut self, ctx: &Context, text: Text) -> Result<(), BoxError> {
        match text.json::<T::Message>() {
            Ok(message) => self.receive_json(ctx, message).await,
            Err(error) => self.invalid_json(ctx, error).await,
        }
    }

    async fn receive_binary(&mut self, _ctx: &Context, _data: Bytes) -> Result<(), BoxError> {
        Ok(())
    }

    async fn event(&mut self, ctx: &Context, message: Message) -> Result<(), BoxError> {
        JsonConsumer::event(self, ctx, message).await
    }

    async fn disconnect(&mut self, ctx: &Context, code: u16) -> Result<(), BoxError> {
        JsonConsumer::disconnect(self, ctx, code).await
    }
}
