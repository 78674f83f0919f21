//! [`ConnectionConfig`]: timeouts, queue sizes and buffer sizes of one connection.

use std::time::Duration;

use crate::layer::SharedLayer;
use crate::{ConnectionLimits, OriginPolicy, Shutdown};

/// Settings for serving one WebSocket connection.
///
/// Every queue is bounded, so memory per connection is bounded too; the
/// defaults keep an idle connection small.
#[derive(Clone)]
#[non_exhaustive]
pub struct ConnectionConfig {
    /// How long the consumer may take to accept or refuse before the
    /// handshake is refused with HTTP 403. Default 5 s.
    pub connect_timeout: Duration,
    /// How long consumers may take in `disconnect` before they are stopped.
    /// Also how long to wait for the client's reply to a server close.
    /// Default 5 s.
    pub close_timeout: Duration,
    /// Messages from the client queued for the consumer. Default 16.
    pub inbox_capacity: usize,
    /// Bytes of messages from the client queued for the consumer (a message
    /// always fits an empty inbox); while over it, nothing more is read.
    /// Default 1 MiB.
    pub inbox_bytes: usize,
    /// Messages queued for the client; senders wait when it is full. Default 64.
    pub outbound_capacity: usize,
    /// Bytes queued for the client; senders wait while it is over. Default
    /// 1 MiB. With [`outbound_capacity`](Self::outbound_capacity) and the
    /// slow-client timeout, this bounds what a client that stops reading
    /// costs.
    pub outbound_bytes: usize,
    /// How long a write to the client may stay stuck before the client is
    /// disconnected with 1013 "slow client". Default 10 s.
    pub slow_client_timeout: Duration,
    /// Hard limit on one incoming message; larger ones close the socket with
    /// 1009 as soon as a frame header announces them or that many bytes have
    /// arrived. An application that declares a smaller limit (a
    /// demultiplexer's `max_frame_size`, see
    /// [`ConsumerFactory::max_message_size`](crate::ConsumerFactory::max_message_size))
    /// lowers it for its connections. Default 8 MiB.
    pub max_message_size: usize,
    /// How long a message may take to arrive once its first bytes have:
    /// longer closes the connection with 1008 "message timeout", so a client
    /// cannot hold a buffer by trickling a large message. Zero means no
    /// limit. Default 10 s. (Enforced by transports that can see partial
    /// messages: the axum mount does.)
    pub message_timeout: Duration,
    /// Which web pages may open a socket; others get HTTP 403. Default:
    /// same host, or no `Origin` header (see [`OriginPolicy`]).
    pub origins: OriginPolicy,
    /// Open connections in all and per client address; over them the
    /// upgrade gets 503 or 429. Default 10,000 and 1,000 (see
    /// [`ConnectionLimits`]); clones of this config share the counts.
    pub limits: ConnectionLimits,
    /// After this long without a frame from the client, send it a ping.
    /// Zero turns pings off. Default 25 s.
    pub ping_interval: Duration,
    /// After a ping, how long to wait for anything from the client before
    /// ending the connection (consumers hear 1006; the client gets a
    /// best-effort close 1001 "ping timeout"). Default 10 s.
    pub pong_timeout: Duration,
    /// Frames per second a client may send (and in one burst); frames over
    /// it are not delivered and are answered with a `rate_limited` error
    /// frame. Zero means no limit. Default 1,000.
    pub max_frame_rate: u32,
    /// Initial read buffer of the WebSocket (it grows for large frames).
    /// Default 1 KiB, instead of tungstenite's 128 KiB, so idle connections
    /// stay cheap; `scripts/bench.sh` measured no throughput loss against
    /// larger buffers, even for 4 KiB messages (BENCHMARKS.md has the table).
    pub read_buffer_size: usize,
    /// Bytes buffered before a write goes to the socket. Default 8 KiB.
    pub write_buffer_size: usize,
    /// Closes the connection with 1001 when triggered. Default: none.
    pub shutdown: Option<Shutdown>,
    /// The channel layer for consumers on this connection (a demultiplexer's
    /// own layer takes precedence for its streams). Default: none.
    pub layer: Option<SharedLayer>,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        ConnectionConfig {
            connect_timeout: Duration::from_secs(5),
            close_timeout: Duration::from_secs(5),
            inbox_capacity: 16,
            inbox_bytes: 1024 * 1024,
            outbound_capacity: 64,
            outbound_bytes: 1024 * 1024,
            slow_client_timeout: Duration::from_secs(10),
            max_message_size: 8 * 1024 * 1024,
            message_timeout: Duration::from_secs(10),
            origins: OriginPolicy::default(),
            limits: ConnectionLimits::default(),
            ping_interval: Duration::from_secs(25),
            pong_timeout: Duration::from_secs(10),
            max_frame_rate: 1_000,
            read_buffer_size: 1024,
            write_buffer_size: 8 * 1024,
            shutdown: None,
            layer: None,
        }
    }
}

impl ConnectionConfig {
    /// Sets [`connect_timeout`](Self::connect_timeout) (default 5 s).
    #[must_use]
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets [`close_timeout`](Self::close_timeout) (default 5 s).
    #[must_use]
    pub fn with_close_timeout(mut self, timeout: Duration) -> Self {
        self.close_timeout = timeout;
        self
    }

    /// Sets [`inbox_capacity`](Self::inbox_capacity) (default 16).
    ///
    /// # Panics
    ///
    /// If `capacity` is 0.
    #[must_use]
    pub fn with_inbox_capacity(mut self, capacity: usize) -> Self {
        assert!(capacity > 0, "inbox capacity must be at least 1");
        self.inbox_capacity = capacity;
        self
    }

    /// Sets [`outbound_capacity`](Self::outbound_capacity) (default 64).
    ///
    /// # Panics
    ///
    /// If `capacity` is 0.
    #[must_use]
    pub fn with_outbound_capacity(mut self, capacity: usize) -> Self {
        assert!(capacity > 0, "outbound capacity must be at least 1");
        self.outbound_capacity = capacity;
        self
    }

    /// Sets [`inbox_bytes`](Self::inbox_bytes) (default 1 MiB).
    #[must_use]
    pub fn with_inbox_bytes(mut self, bytes: usize) -> Self {
        self.inbox_bytes = bytes;
        self
    }

    /// Sets [`outbound_bytes`](Self::outbound_bytes) (default 1 MiB).
    #[must_use]
    pub fn with_outbound_bytes(mut self, bytes: usize) -> Self {
        self.outbound_bytes = bytes;
        self
    }

    /// Sets [`slow_client_timeout`](Self::slow_client_timeout) (default 10 s).
    #[must_use]
    pub fn with_slow_client_timeout(mut self, timeout: Duration) -> Self {
        self.slow_client_timeout = timeout;
        self
    }

    /// Sets [`max_message_size`](Self::max_message_size) (default 8 MiB).
    #[must_use]
    pub fn with_max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes;
        self
    }

    /// Sets [`message_timeout`](Self::message_timeout) (default 10 s; zero: none).
    #[must_use]
    pub fn with_message_timeout(mut self, timeout: Duration) -> Self {
        self.message_timeout = timeout;
        self
    }

    /// Sets [`origins`](Self::origins), the origin policy (default: same host).
    #[must_use]
    pub fn with_origins(mut self, origins: OriginPolicy) -> Self {
        self.origins = origins;
        self
    }

    /// Sets [`limits`](Self::limits) on open connections.
    #[must_use]
    pub fn with_limits(mut self, limits: ConnectionLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Sets [`ping_interval`](Self::ping_interval) (default 25 s; zero: no pings).
    #[must_use]
    pub fn with_ping_interval(mut self, interval: Duration) -> Self {
        self.ping_interval = interval;
        self
    }

    /// Sets [`pong_timeout`](Self::pong_timeout) (default 10 s).
    #[must_use]
    pub fn with_pong_timeout(mut self, timeout: Duration) -> Self {
        self.pong_timeout = timeout;
        self
    }

    /// Sets [`max_frame_rate`](Self::max_frame_rate) (default 1,000 frames
    /// per second; zero: no limit).
    #[must_use]
    pub fn with_max_frame_rate(mut self, frames_per_second: u32) -> Self {
        self.max_frame_rate = frames_per_second;
        self
    }

    /// Sets [`read_buffer_size`](Self::read_buffer_size) (default 1 KiB).
    #[must_use]
    pub fn with_read_buffer_size(mut self, bytes: usize) -> Self {
        self.read_buffer_size = bytes;
        self
    }

    /// Sets [`write_buffer_size`](Self::write_buffer_size) (default 8 KiB).
    #[must_use]
    pub fn with_write_buffer_size(mut self, bytes: usize) -> Self {
        self.write_buffer_size = bytes;
        self
    }

    /// Sets [`layer`](Self::layer), the channel layer for groups.
    #[must_use]
    pub fn with_layer(mut self, layer: SharedLayer) -> Self {
        self.layer = Some(layer);
        self
    }

    /// Sets [`shutdown`](Self::shutdown): connections close with 1001 when it triggers.
    #[must_use]
    pub fn with_shutdown(mut self, shutdown: Shutdown) -> Self {
        self.shutdown = Some(shutdown);
        self
    }
}

impl std::fmt::Debug for ConnectionConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionConfig")
            .field("connect_timeout", &self.connect_timeout)
            .field("close_timeout", &self.close_timeout)
            .field("inbox_capacity", &self.inbox_capacity)
            .field("inbox_bytes", &self.inbox_bytes)
            .field("outbound_capacity", &self.outbound_capacity)
            .field("outbound_bytes", &self.outbound_bytes)
            .field("slow_client_timeout", &self.slow_client_timeout)
            .field("max_message_size", &self.max_message_size)
            .field("message_timeout", &self.message_timeout)
            .field("origins", &self.origins)
            .field("limits", &self.limits)
            .field("ping_interval", &self.ping_interval)
            .field("pong_timeout", &self.pong_timeout)
            .field("max_frame_rate", &self.max_frame_rate)
            .field("read_buffer_size", &self.read_buffer_size)
            .field("write_buffer_size", &self.write_buffer_size)
            .field("shutdown", &self.shutdown)
            .field("layer", &self.layer.as_ref().map(|l| l.stats()))
            .finish()
    }
}
