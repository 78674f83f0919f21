//! The consumers of the reference test suite, served by the demo and the
//! conformance example.

use chanmux::{BoxError, Consumer, Context, JsonConsumer, Text};
use serde_json::{Value, json};

/// `echostream`: sends every payload back unchanged.
#[derive(Debug, Default)]
pub struct Echo;

impl Consumer for Echo {
    async fn receive_text(&mut self, ctx: &Context, text: Text) -> Result<(), BoxError> {
        ctx.send_text(text).await?;
        Ok(())
    }
}

/// `altechostream`: replies `{"received": <payload>, "alt_value": 123}`.
#[derive(Debug, Default)]
pub struct AltEcho;

impl JsonConsumer for AltEcho {
    type Message = Value;

    async fn receive_json(&mut self, ctx: &Context, message: Value) -> Result<(), BoxError> {
        ctx.send_json(&json!({"received": message, "alt_value": 123}))
            .await?;
        Ok(())
    }
}

/// `closeafterfirst`: echoes once, then closes its stream (code 1000).
#[derive(Debug, Default)]
pub struct CloseAfterFirst;

impl Consumer for CloseAfterFirst {
    async fn receive_text(&mut self, ctx: &Context, text: Text) -> Result<(), BoxError> {
        ctx.send_text(text).await?;
        ctx.close().await?;
        Ok(())
    }
}

/// `closewithcode`: echoes once, then closes with 4001 and reason "bye".
#[derive(Debug, Default)]
pub struct CloseWithCode;

impl Consumer for CloseWithCode {
    async fn receive_text(&mut self, ctx: &Context, text: Text) -> Result<(), BoxError> {
        ctx.send_text(text).await?;
        ctx.close_with(4001, "bye").await?;
        Ok(())
    }
}

/// `neveraccept` (and `/ws/single/`'s `test`): an echo consumer that never accepts.
#[derive(Debug, Default)]
pub struct NeverAccept;

impl Consumer for NeverAccept {
    async fn connect(&mut self, _ctx: &Context) -> Result<(), BoxError> {
        Ok(())
    }

    async fn receive_text(&mut self, ctx: &Context, text: Text) -> Result<(), BoxError> {
        ctx.send_text(text).await?;
        Ok(())
    }
}

/// `raiseinaccept`: fails in connect.
#[derive(Debug, Default)]
pub struct RaiseInConnect;

impl Consumer for RaiseInConnect {
    async fn connect(&mut self, _ctx: &Context) -> Result<(), BoxError> {
        Err("Test my error".into())
    }
}
