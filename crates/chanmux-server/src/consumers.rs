//! The consumers of the reference test suite, served by the demo and the
//! conformance example.

use chanmux::{BoxError, Consumer, Context, Text};
use serde::Serialize;
use serde_json::value::RawValue;

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
///
/// The payload is embedded as raw JSON, so it keeps its exact text (a parsed
/// value would turn `1e3` into `1000.0`) and the keys keep this order.
#[derive(Debug, Default)]
pub struct AltEcho;

#[derive(Serialize)]
struct AltReply<'a> {
    received: &'a RawValue,
    alt_value: u32,
}

impl Consumer for AltEcho {
    async fn receive_text(&mut self, ctx: &Context, text: Text) -> Result<(), BoxError> {
        let received: &RawValue = serde_json::from_str(text.as_str())?;
        ctx.send_json(&AltReply {
            received,
            alt_value: 123,
        })
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
