//! What the library records through the [`metrics`] facade, for any
//! exporter (the demo server exports them in Prometheus' text format on
//! `--metrics-addr`).
//!
//! Install the recorder before serving, then call [`describe`]: it gives
//! the exporter help texts and units, and turns on timing handlers for
//! `chanmux_handler_seconds` (two clock reads per handler call, skipped
//! until then, so an application without metrics does not pay for them).
//! The handles are looked up once (per stream, at its first connection) and
//! kept, so the per-message path costs atomic adds and no lookup.
//!
//! | name | kind | labels |
//! |---|---|---|
//! | `chanmux_connections` | gauge | |
//! | `chanmux_connections_total` | counter | `outcome`: `accepted`, `refused`, `failed`, `timed_out`, `origin_refused`, `over_limit`, `shutting_down`, `bad_request` (not a valid WebSocket upgrade) |
//! | `chanmux_disconnects_total` | counter | `code`: the close code; application codes as `3xxx` / `4xxx` |
//! | `chanmux_streams` | gauge | `stream` |
//! | `chanmux_frames_received_total` | counter | `stream` |
//! | `chanmux_frames_sent_total` | counter | `stream` |
//! | `chanmux_handler_seconds` | histogram | `stream` |
//! | `chanmux_bytes_received_total` | counter | |
//! | `chanmux_bytes_sent_total` | counter | |
//! | `chanmux_error_frames_total` | counter | `code`: an [`ErrorCode`], or `application` for a consumer's own codes |
//! | `chanmux_slow_client_disconnects_total` | counter | |
//! | `chanmux_ping_timeouts_total` | counter | |
//! | `chanmux_group_messages_total` | counter | `result`: `delivered`, `dropped` |
//! | `chanmux_layer_up` | gauge | |
//!
//! Every label value comes from a fixed set or from the application (a
//! declared stream name), never from what a client sends, so the number of
//! series stays bounded.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chanmux_core::ErrorCode;
use metrics::{Counter, Gauge, Histogram, Unit};

pub use chanmux_core::layer::{GROUP_MESSAGES, LAYER_UP};

/// Open WebSocket connections (gauge).
pub const CONNECTIONS: &str = "chanmux_connections";
/// Connection attempts by `outcome` (counter).
pub const CONNECTIONS_TOTAL: &str = "chanmux_connections_total";
/// Ended connections by close `code` (counter).
pub const DISCONNECTS: &str = "chanmux_disconnects_total";
/// Open streams by `stream` (gauge): consumers that accepted and have not ended.
pub const STREAMS: &str = "chanmux_streams";
/// Frames routed to a stream, by `stream` (counter).
pub const FRAMES_RECEIVED: &str = "chanmux_frames_received_total";
/// Frames a stream sent, by `stream` (counter).
pub const FRAMES_SENT: &str = "chanmux_frames_sent_total";
/// Time a stream's consumer took to handle a frame or event, by `stream` (histogram).
pub const HANDLER_SECONDS: &str = "chanmux_handler_seconds";
/// WebSocket bytes read from clients, frame headers included (counter).
pub const BYTES_RECEIVED: &str = "chanmux_bytes_received_total";
/// WebSocket bytes written to clients, frame headers included (counter).
pub const BYTES_SENT: &str = "chanmux_bytes_sent_total";
/// Error frames sent, by `code` (counter).
pub const ERROR_FRAMES: &str = "chanmux_error_frames_total";
/// Clients disconnected with 1013 because they did not read (counter).
pub const SLOW_CLIENT_DISCONNECTS: &str = "chanmux_slow_client_disconnects_total";
/// Clients dropped because they did not answer a ping (counter).
pub const PING_TIMEOUTS: &str = "chanmux_ping_timeouts_total";

/// Set by [`describe`]: a recorder is installed, so handlers are timed.
static TIMING: AtomicBool = AtomicBool::new(false);

/// Registers the help text and unit of every metric with the installed
/// recorder, and turns on the handler-time histogram. Call once, after
/// installing the recorder.
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    TIMING.store(true, Ordering::Relaxed);
    describe_gauge!(CONNECTIONS, "Open WebSocket connections.");
    describe_counter!(
        CONNECTIONS_TOTAL,
        "WebSocket connection attempts, by outcome."
    );
    describe_counter!(DISCONNECTS, "Ended WebSocket connections, by close code.");
    describe_gauge!(STREAMS, "Open streams (accepted, not ended), by stream.");
    describe_counter!(FRAMES_RECEIVED, "Frames routed to a stream, by stream.");
    describe_counter!(FRAMES_SENT, "Frames sent by a stream, by stream.");
    describe_histogram!(
        HANDLER_SECONDS,
        Unit::Seconds,
        "Time a stream's consumer took to handle one frame or event."
    );
    describe_counter!(
        BYTES_RECEIVED,
        Unit::Bytes,
        "WebSocket bytes read from clients."
    );
    describe_counter!(
        BYTES_SENT,
        Unit::Bytes,
        "WebSocket bytes written to clients."
    );
    describe_counter!(ERROR_FRAMES, "Error frames sent to clients, by code.");
    describe_counter!(
        SLOW_CLIENT_DISCONNECTS,
        "Clients disconnected (1013) for not reading what they were sent."
    );
    describe_counter!(PING_TIMEOUTS, "Clients dropped for not answering a ping.");
    describe_counter!(
        GROUP_MESSAGES,
        "Group messages to local members, by result (delivered, dropped)."
    );
    describe_gauge!(
        LAYER_UP,
        "1 while the channel layer's backend is reachable, else 0."
    );
}

/// A connection attempt's outcome.
pub(crate) fn connection(outcome: &'static str) {
    metrics::counter!(CONNECTIONS_TOTAL, "outcome" => outcome).increment(1);
}

/// Counts an open connection in [`CONNECTIONS`] while it lives. Holds
/// nothing: the gauge is looked up once per process.
pub(crate) struct OpenConnection;

fn open_connections() -> &'static Gauge {
    static OPEN: OnceLock<Gauge> = OnceLock::new();
    OPEN.get_or_init(|| metrics::gauge!(CONNECTIONS))
}

impl OpenConnection {
    pub(crate) fn new() -> Self {
        open_connections().increment(1);
        OpenConnection
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        open_connections().decrement(1);
    }
}

/// A connection ended with close `code`.
pub(crate) fn disconnect(code: u16) {
    const RFC: [&str; 16] = [
        "1000", "1001", "1002", "1003", "1004", "1005", "1006", "1007", "1008", "1009", "1010",
        "1011", "1012", "1013", "1014", "1015",
    ];
    let label = match code {
        1000..=1015 => RFC[usize::from(code - 1000)],
        3000..=3999 => "3xxx",
        4000..=4999 => "4xxx",
        _ => "other",
    };
    metrics::counter!(DISCONNECTS, "code" => label).increment(1);
}

/// An error frame (or, in strict mode, the close that stands for one).
/// Its counters are looked up once per process: a client can make one per
/// frame it sends (a flood over the rate limit, say).
pub(crate) fn error_frame(code: ErrorCode) {
    static BY_CODE: OnceLock<Vec<(ErrorCode, Counter)>> = OnceLock::new();
    let counters = BY_CODE.get_or_init(|| {
        ErrorCode::ALL
            .into_iter()
            .map(|code| {
                (
                    code,
                    metrics::counter!(ERROR_FRAMES, "code" => code.as_str()),
                )
            })
            .collect()
    });
    if let Some((_, counter)) = counters.iter().find(|(c, _)| *c == code) {
        counter.increment(1);
    }
}

/// An error frame with an application's own code (one label for all: the
/// codes are the application's to choose, so not a bounded set).
pub(crate) fn app_error_frame() {
    static APP: OnceLock<Counter> = OnceLock::new();
    APP.get_or_init(|| metrics::counter!(ERROR_FRAMES, "code" => "application"))
        .increment(1);
}

pub(crate) fn slow_client() {
    metrics::counter!(SLOW_CLIENT_DISCONNECTS).increment(1);
}

pub(crate) fn ping_timeout() {
    metrics::counter!(PING_TIMEOUTS).increment(1);
}

/// Byte counters, looked up once per process.
#[cfg(feature = "axum")]
pub(crate) fn bytes() -> &'static (Counter, Counter) {
    static BYTES: OnceLock<(Counter, Counter)> = OnceLock::new();
    BYTES.get_or_init(|| {
        (
            metrics::counter!(BYTES_RECEIVED),
            metrics::counter!(BYTES_SENT),
        )
    })
}

/// One declared stream's handles, shared by its consumers on every
/// connection (kept in the demultiplexer's `Declared`, looked up at the
/// stream's first connection).
pub(crate) struct StreamHandles {
    pub(crate) received: Counter,
    pub(crate) sent: Counter,
    pub(crate) open: Gauge,
    handler: Histogram,
}

impl StreamHandles {
    /// Looks up the handles labelled with `stream`.
    pub(crate) fn new(stream: &str) -> Self {
        let stream = stream.to_owned();
        StreamHandles {
            received: metrics::counter!(FRAMES_RECEIVED, "stream" => stream.clone()),
            sent: metrics::counter!(FRAMES_SENT, "stream" => stream.clone()),
            open: metrics::gauge!(STREAMS, "stream" => stream.clone()),
            handler: metrics::histogram!(HANDLER_SECONDS, "stream" => stream),
        }
    }

    /// Whether handler calls are timed (see [`describe`]).
    pub(crate) fn timing(&self) -> bool {
        TIMING.load(Ordering::Relaxed)
    }

    pub(crate) fn handled(&self, took: Duration) {
        self.handler.record(took.as_secs_f64());
    }
}
