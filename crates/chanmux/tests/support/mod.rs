//! Consumers and helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chanmux::testing::{Communicator, Output};
use chanmux::{BoxError, ConnectionConfig, Consumer, Context, Demultiplexer, JsonConsumer, Text};
use serde_json::{Value, json};
use tokio::sync::Semaphore;

/// Echoes every payload back (Python: `EchoTestConsumer`).
pub struct Echo;

impl Consumer for Echo {
    async fn receive_text(&mut self, ctx: &Context, text: Text) -> Result<(), BoxError> {
        ctx.send_text(text).await?;
        Ok(())
    }
}

/// Replies `{"received": <payload>, "alt_value": 123}` (Python: `AltEchoTestConsumer`).
pub struct AltEcho;

impl JsonConsumer for AltEcho {
    type Message = Value;
    async fn receive_json(&mut self, ctx: &Context, message: Value) -> Result<(), BoxError> {
        ctx.send_json(&json!({"received": message, "alt_value": 123}))
            .await?;
        Ok(())
    }
}

/// Echoes once, then closes (Python: `EchoCloseAfterFirstTestConsumer`).
pub struct CloseAfterFirst;

impl Consumer for CloseAfterFirst {
    async fn receive_text(&mut self, ctx: &Context, text: Text) -> Result<(), BoxError> {
        ctx.send_text(text).await?;
        ctx.close().await?;
        Ok(())
    }
}

/// Echoes once, then closes with 4001 "bye".
pub struct CloseWithCode;

impl Consumer for CloseWithCode {
    async fn receive_text(&mut self, ctx: &Context, text: Text) -> Result<(), BoxError> {
        ctx.send_text(text).await?;
        ctx.close_with(4001, "bye").await?;
        Ok(())
    }
}

/// Never accepts (Python: `NeverAcceptTestConsumer`).
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

/// Refuses in connect.
pub struct Refuse;

impl Consumer for Refuse {
    async fn connect(&mut self, ctx: &Context) -> Result<(), BoxError> {
        ctx.refuse();
        Ok(())
    }
}

/// Fails in connect (Python: `RaiseInAcceptTestConsumer`).
pub struct RaiseInConnect;

impl Consumer for RaiseInConnect {
    async fn connect(&mut self, _ctx: &Context) -> Result<(), BoxError> {
        Err("Test my error".into())
    }
}

/// Panics in connect.
pub struct PanicInConnect;

impl Consumer for PanicInConnect {
    async fn connect(&mut self, _ctx: &Context) -> Result<(), BoxError> {
        panic!("boom in connect")
    }
}

/// Accepts, then panics on the first message.
pub struct PanicOnReceive;

impl Consumer for PanicOnReceive {
    async fn receive_text(&mut self, _ctx: &Context, _text: Text) -> Result<(), BoxError> {
        panic!("boom in receive")
    }
}

/// Accepts, then returns an error on the first message.
pub struct ErrorOnReceive;

impl Consumer for ErrorOnReceive {
    async fn receive_text(&mut self, _ctx: &Context, _text: Text) -> Result<(), BoxError> {
        Err("receive failed".into())
    }
}

/// A shared log of what consumers saw, for assertions.
#[derive(Clone, Default)]
pub struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    pub fn push(&self, entry: impl Into<String>) {
        self.0.lock().unwrap().push(entry.into());
    }
    pub fn entries(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
    pub fn contains(&self, entry: &str) -> bool {
        self.0.lock().unwrap().iter().any(|e| e == entry)
    }
}

/// Accepts, records connect/receive/disconnect as `"<name> <event>"`, echoes.
pub struct Recorder {
    pub name: &'static str,
    pub log: Log,
}

impl Consumer for Recorder {
    async fn connect(&mut self, ctx: &Context) -> Result<(), BoxError> {
        self.log.push(format!("{} connect", self.name));
        ctx.accept().await?;
        Ok(())
    }
    async fn receive_text(&mut self, ctx: &Context, text: Text) -> Result<(), BoxError> {
        self.log
            .push(format!("{} receive {}", self.name, text.as_str()));
        ctx.send_text(text).await?;
        Ok(())
    }
    async fn disconnect(&mut self, _ctx: &Context, code: u16) -> Result<(), BoxError> {
        self.log.push(format!("{} disconnect {code}", self.name));
        Ok(())
    }
}

/// Takes `delay` in its disconnect handler, logging start and end.
pub struct SlowDisconnect {
    pub delay: Duration,
    pub log: Log,
}

impl Consumer for SlowDisconnect {
    async fn disconnect(&mut self, _ctx: &Context, _code: u16) -> Result<(), BoxError> {
        self.log.push("sleep_start");
        tokio::time::sleep(self.delay).await;
        self.log.push("sleep_end");
        Ok(())
    }
}

/// Accepts; on each message announces `{"started": <payload>}`, then waits
/// for a permit from `gate` before echoing. Lets a test hold a handler busy.
pub struct Gated {
    pub gate: Arc<Semaphore>,
}

impl Consumer for Gated {
    async fn receive_text(&mut self, ctx: &Context, text: Text) -> Result<(), BoxError> {
        ctx.send_json(&json!({"started": text.value()?})).await?;
        self.gate.acquire().await?.forget();
        ctx.send_text(text).await?;
        Ok(())
    }
}

/// Accepts only when `gate` gives a permit, then says `{"ready": true}`.
pub struct AcceptLater {
    pub gate: Arc<Semaphore>,
}

impl Consumer for AcceptLater {
    async fn connect(&mut self, ctx: &Context) -> Result<(), BoxError> {
        let ctx = ctx.clone();
        let gate = self.gate.clone();
        // Accept from another task, as a consumer waiting on an outside
        // event would: connect itself returns without answering.
        tokio::spawn(async move {
            gate.acquire().await.unwrap().forget();
            ctx.accept().await.unwrap();
            ctx.send_json(&json!({"ready": true})).await.unwrap();
        });
        Ok(())
    }
    async fn receive_text(&mut self, ctx: &Context, text: Text) -> Result<(), BoxError> {
        ctx.send_text(text).await?;
        Ok(())
    }
}

/// The error frame the demultiplexer sends for `code`, with any message.
pub fn assert_error_frame(frame: &Value, code: &str, stream: Option<&str>) {
    let object = frame
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {frame}"));
    assert_eq!(
        object.len(),
        2,
        "error frames have exactly `error` and `stream`: {frame}"
    );
    assert_eq!(frame["error"]["code"], code, "{frame}");
    assert!(frame["error"]["message"].is_string(), "{frame}");
    assert_eq!(
        frame["stream"],
        stream.map_or(Value::Null, Value::from),
        "{frame}"
    );
    assert!(frame.get("payload").is_none());
}

/// Waits (at most 10 s) until `condition` holds, for effects seen only in
/// a [`Log`]; fails the test on timeout.
pub async fn wait_until(what: &str, condition: impl Fn() -> bool) {
    tokio::time::timeout(Duration::from_secs(10), async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
}

/// Logs from the code under test, shown only for failing tests.
pub fn trace_init() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("chanmux=debug")
        .with_test_writer()
        .try_init();
}

/// Everything the client gets until the server is quiet.
pub async fn drain(comm: &mut Communicator) -> Vec<String> {
    let mut got = Vec::new();
    while let Ok(output) = comm.receive_output().await {
        got.push(match output {
            Output::Text(text) => text,
            other => format!("{other:?}"),
        });
    }
    got
}

/// A client that reads one message at a time, over an outbound queue of
/// `outbound` frames: what it has not read fills the server's queue.
pub fn slow_reader(demux: Demultiplexer, outbound: usize) -> Communicator {
    let config = ConnectionConfig::default().with_outbound_capacity(outbound);
    Communicator::new(demux, "/")
        .config(config)
        .client_buffer(1)
        .receive_timeout(Duration::from_secs(2))
}
