//! The flags (and their environment variables) of the demo server and the
//! conformance example, and [`Args::load`], which merges them with a
//! `--config` file.

use super::file;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use chanmux::{ConnectionConfig, ConnectionLimits, OriginPolicy, Shutdown};
use clap::{CommandFactory as _, FromArgMatches as _, Parser};
use serde::{Deserialize, Serialize};

/// Flags of the demo server and the conformance example.
///
/// Every setting may also come from a `--config` TOML file, under the
/// field's name; [`Args::load`] merges the sources. A new setting is added
/// here and to the list in `file.rs` (the build fails until it is).
#[derive(Debug, Parser)]
#[command(version)]
pub(crate) struct Args {
    /// Read settings from this TOML file (keys named like the flags, in
    /// snake_case: `addr`, `ping_interval`, `allowed_origins`, ...). Flags
    /// and environment variables override it.
    #[arg(long, env = "CHANMUX_CONFIG", value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Print the effective configuration (flags, environment, file and
    /// defaults merged) as TOML that --config accepts, and exit.
    #[arg(long)]
    pub(crate) print_config: bool,
    /// Address to listen on.
    #[arg(long, env = "CHANMUX_ADDR", default_value = "127.0.0.1:8000")]
    pub(crate) addr: SocketAddr,
    /// Redis URL for groups shared between processes (e.g. redis://127.0.0.1:6379/);
    /// without it, groups live in this process.
    #[arg(long, env = "CHANMUX_REDIS_URL")]
    pub(crate) redis: Option<String>,
    /// Seed nodes of a Redis Cluster (7+) for groups shared between
    /// processes, comma-separated (e.g.
    /// redis://10.0.0.1:6379/,redis://10.0.0.2:6379/); groups use sharded
    /// pub/sub and follow failovers. Not with --redis.
    #[arg(
        long,
        env = "CHANMUX_REDIS_CLUSTER",
        value_delimiter = ',',
        value_name = "URL"
    )]
    pub(crate) redis_cluster: Vec<String>,
    /// Initial WebSocket read buffer per connection, in bytes: smaller keeps
    /// idle connections cheaper, larger reads big frames in fewer calls
    /// (BENCHMARKS.md has the trade-off).
    #[arg(long, env = "CHANMUX_READ_BUFFER", default_value_t = ConnectionConfig::default().read_buffer_size)]
    pub(crate) read_buffer: usize,
    /// Also allow WebSockets from web pages at this origin
    /// (`scheme://host[:port]`, `*` for any run of characters in the host,
    /// e.g. `https://*.example.com`); repeatable. Pages on the server's own
    /// host and clients that send no Origin are always allowed; `*` allows
    /// every origin.
    #[arg(
        long = "allowed-origin",
        env = "CHANMUX_ALLOWED_ORIGINS",
        value_delimiter = ','
    )]
    pub(crate) allowed_origins: Vec<String>,
    /// Seconds of silence from a client before it is pinged; 0 turns pings off.
    #[arg(long, env = "CHANMUX_PING_INTERVAL", default_value_t = 25)]
    pub(crate) ping_interval: u64,
    /// Seconds to wait for anything from a pinged client before dropping it.
    #[arg(long, env = "CHANMUX_PONG_TIMEOUT", default_value_t = 10)]
    pub(crate) pong_timeout: u64,
    /// Connections the kernel may queue for accepting (capped by
    /// net.core.somaxconn): room for a crowd reconnecting at once.
    #[arg(long, env = "CHANMUX_BACKLOG", default_value_t = 4096)]
    pub(crate) backlog: u32,
    /// Seconds a client has to send its HTTP request head (also the longest
    /// idle time between keep-alive requests); 0 for no limit.
    #[arg(long, env = "CHANMUX_HANDSHAKE_TIMEOUT", default_value_t = 10)]
    pub(crate) handshake_timeout: u64,
    /// Seconds a WebSocket message may take to arrive once it has started
    /// (longer closes the connection with 1008); 0 for no limit.
    #[arg(long, env = "CHANMUX_MESSAGE_TIMEOUT", default_value_t = 10)]
    pub(crate) message_timeout: u64,
    /// Most WebSocket connections open at once (more get HTTP 503); 0 for no limit.
    #[arg(long, env = "CHANMUX_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub(crate) max_connections: usize,
    /// Most WebSocket connections from one client address (more get HTTP
    /// 429); 0 for no limit.
    #[arg(long, env = "CHANMUX_MAX_CONNECTIONS_PER_IP", default_value_t = 1_000)]
    pub(crate) max_connections_per_ip: usize,
    /// A proxy (address or CIDR range) whose X-Forwarded-For names the
    /// client, for the per-address limit; repeatable.
    #[arg(
        long = "trusted-proxy",
        env = "CHANMUX_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    pub(crate) trusted_proxies: Vec<String>,
    /// Seconds a write to a client may stay stuck (the client is not
    /// reading) before it is disconnected with 1013.
    #[arg(long, env = "CHANMUX_SLOW_CLIENT_TIMEOUT", default_value_t = 10)]
    pub(crate) slow_client_timeout: u64,
    /// Frames per second one connection may send (and in one burst); more
    /// are answered with a `rate_limited` error frame. 0 for no limit.
    #[arg(long, env = "CHANMUX_MAX_FRAME_RATE", default_value_t = 1_000)]
    pub(crate) max_frame_rate: u32,
    /// Serve `GET /stats` (connections and channel-layer counts, as JSON).
    #[arg(long, env = "CHANMUX_STATS")]
    pub(crate) stats: bool,
    /// Serve Prometheus metrics at `http://ADDR/metrics` on a listener of
    /// their own (e.g. 127.0.0.1:9090); off unless given.
    #[arg(long, env = "CHANMUX_METRICS_ADDR")]
    pub(crate) metrics_addr: Option<SocketAddr>,
    /// Log format: `text` for people, `json` (one object per line) for log
    /// shippers. Which lines are logged is set by RUST_LOG (default `info`).
    #[arg(long, env = "CHANMUX_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub(crate) log_format: LogFormat,
    /// Seconds a graceful shutdown (SIGTERM or Ctrl-C) takes at most:
    /// WebSockets are closed with 1001 spread over this time, then the
    /// process exits whatever is still open. A second signal closes the rest
    /// at once.
    #[arg(long, env = "CHANMUX_DRAIN_SECS", default_value_t = 10)]
    pub(crate) drain_secs: u64,
    /// PEM certificate chain: serve `https://` and `wss://` (needs --tls-key).
    #[arg(long, env = "CHANMUX_TLS_CERT")]
    pub(crate) tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, env = "CHANMUX_TLS_KEY")]
    pub(crate) tls_key: Option<PathBuf>,
}

/// How log lines are written (`"text"` or `"json"` in a config file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl Args {
    /// Parses the flags and the environment, fills what neither set from
    /// the `--config` file, and checks the result. With `--print-config` it
    /// prints the result as TOML and exits the process with status 0.
    ///
    /// Precedence, per setting: flag, then environment variable, then
    /// file, then the flag's default.
    ///
    /// # Errors
    ///
    /// The config file cannot be read, is not TOML, holds an unknown key or
    /// a value of the wrong type (the message names the file, the line and
    /// the key), or the merged settings are inconsistent (see
    /// [`Args::validate`]). Bad flags exit through clap, as `parse` does.
    pub(crate) fn load() -> anyhow::Result<Self> {
        let matches = Self::command().get_matches();
        let mut args = Self::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
        if let Some(path) = &args.config {
            let file = file::ConfigFile::read(path)?;
            file.fill(&mut args, |id| {
                matches!(
                    matches.value_source(id),
                    None | Some(clap::parser::ValueSource::DefaultValue)
                )
            });
        }
        args.validate()?;
        if args.print_config {
            let text = file::ConfigFile::from_args(&args).to_toml()?;
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(text.as_bytes())
                .and_then(|()| stdout.flush())
                .context("writing the configuration to stdout")?;
            std::process::exit(0);
        }
        Ok(args)
    }

    /// Checks what no single source can: settings that need each other may
    /// come from different ones (a certificate on the command line, its key
    /// in the file).
    ///
    /// # Errors
    ///
    /// `tls_cert` without `tls_key`, or the reverse; both `redis` and
    /// `redis_cluster`.
    fn validate(&self) -> anyhow::Result<()> {
        if self.redis.is_some() && !self.redis_cluster.is_empty() {
            anyhow::bail!(
                "--redis and --redis-cluster (or CHANMUX_REDIS_URL and CHANMUX_REDIS_CLUSTER, \
                 or redis and redis_cluster in the config file) exclude each other: \
                 give one Redis or one cluster"
            );
        }
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) => anyhow::bail!(
                "--tls-cert needs --tls-key (or CHANMUX_TLS_KEY, or tls_key in the config file)"
            ),
            (None, Some(_)) => anyhow::bail!(
                "--tls-key needs --tls-cert (or CHANMUX_TLS_CERT, or tls_cert in the config file)"
            ),
            _ => Ok(()),
        }
    }

    /// Where groups live, as these flags ask.
    pub(crate) fn groups(&self) -> chanmux_server::Groups<'_> {
        match (&self.redis, self.redis_cluster.as_slice()) {
            (Some(url), _) => chanmux_server::Groups::Redis(url),
            (None, []) => chanmux_server::Groups::InMemory,
            (None, seeds) => chanmux_server::Groups::RedisCluster(seeds),
        }
    }

    /// The certificate and key files, when TLS is asked for (both are
    /// given: [`Args::load`] refuses one without the other).
    pub(crate) fn tls(&self) -> Option<(&std::path::Path, &std::path::Path)> {
        self.tls_cert.as_deref().zip(self.tls_key.as_deref())
    }

    /// The connection settings these flags ask for.
    pub(crate) fn connection_config(&self, shutdown: Shutdown) -> anyhow::Result<ConnectionConfig> {
        let mut origins = OriginPolicy::same_host();
        for pattern in &self.allowed_origins {
            origins = origins.allow(pattern);
        }
        if origins.allows_any() {
            tracing::warn!(
                "every origin is allowed: any web page can open a WebSocket with its visitors' cookies"
            );
        }
        let mut limits = ConnectionLimits::new(self.max_connections, self.max_connections_per_ip);
        for proxy in &self.trusted_proxies {
            limits = limits.trust_proxy(proxy).context("--trusted-proxy")?;
        }
        Ok(ConnectionConfig::default()
            .with_shutdown(shutdown)
            .with_read_buffer_size(self.read_buffer)
            .with_origins(origins)
            .with_limits(limits)
            .with_ping_interval(Duration::from_secs(self.ping_interval))
            .with_pong_timeout(Duration::from_secs(self.pong_timeout))
            .with_message_timeout(Duration::from_secs(self.message_timeout))
            .with_slow_client_timeout(Duration::from_secs(self.slow_client_timeout))
            .with_max_frame_rate(self.max_frame_rate))
    }
}
