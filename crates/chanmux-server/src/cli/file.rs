//! The `--config` file: a TOML table holding any of the settings the flags
//! hold, under the fields' names, with the flags' types and units.
//!
//! The settings are listed once, in the `settings!` invocation below; it
//! declares the file's struct and the two conversions (file into [`Args`],
//! [`Args`] into the file for `--print-config`). Both destructure their
//! source exhaustively, so a flag added to [`Args`] and forgotten here does
//! not compile.

use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use super::args::{Args, LogFormat};

/// Declares [`ConfigFile`] with one optional field per listed setting, and
/// its conversions from and into [`Args`]. Each setting is `name: Type`, the
/// name and type of its field in [`Args`].
macro_rules! settings {
    ($($name:ident: $ty:ty,)*) => {
        /// The contents of a `--config` file: each setting is optional
        /// (absent: the flag's environment variable or default applies).
        /// Unknown keys are refused, so a misspelt setting is not silently
        /// ignored.
        #[derive(Debug, Deserialize, Serialize)]
        #[serde(deny_unknown_fields)]
        pub(super) struct ConfigFile {
            $(
                #[doc = concat!("The file's `", stringify!($name), "`, if it has one.")]
                #[serde(default, skip_serializing_if = "Option::is_none")]
                $name: Option<$ty>,
            )*
        }

        impl ConfigFile {
            /// Every setting of `args`, for printing as a file that
            /// reproduces them.
            pub(super) fn from_args(args: &Args) -> Self {
                // Not a config file's settings: where to read one, and
                // whether to print the result. An error here (rustc may say
                // "inaccessible fields") means a field of Args is missing
                // from the `settings!` list.
                let Args { config: _, print_config: _, $($name),* } = args;
                Self { $($name: Some($name.clone())),* }
            }

            /// Copies the file's settings into `args`, each only where
            /// `unset(id)` says neither a flag nor the environment gave
            /// one (`id` is the clap argument id: the field's name).
            pub(super) fn fill(self, args: &mut Args, unset: impl Fn(&str) -> bool) {
                let Self { $($name),* } = self;
                $(
                    if let Some(value) = $name {
                        if unset(stringify!($name)) {
                            args.$name = value;
                        }
                    }
                )*
            }
        }
    };
}

settings! {
    addr: SocketAddr,
    redis: Option<String>,
    redis_cluster: Vec<String>,
    read_buffer: usize,
    backlog: u32,
    allowed_origins: Vec<String>,
    ping_interval: u64,
    pong_timeout: u64,
    handshake_timeout: u64,
    message_timeout: u64,
    max_connections: usize,
    max_connections_per_ip: usize,
    trusted_proxies: Vec<String>,
    slow_client_timeout: u64,
    max_frame_rate: u32,
    stats: bool,
    metrics_addr: Option<SocketAddr>,
    log_format: LogFormat,
    drain_secs: u64,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
}

impl ConfigFile {
    /// Reads and parses the file at `path`.
    ///
    /// # Errors
    ///
    /// The file cannot be read (the message names the path), or its TOML is
    /// malformed, has an unknown key or a value of the wrong type (the
    /// message names the path, line, column and, where there is one, the
    /// key).
    pub(super) fn read(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading --config {}", path.display()))?;
        toml::from_str(&text).map_err(|e| {
            let at = e.span().map_or_else(String::new, |span| {
                let (line, column) = line_column(&text, span.start);
                match key_at(&text, span) {
                    Some(key) => format!(", line {line}, column {column}, key `{key}`"),
                    None => format!(", line {line}, column {column}"),
                }
            });
            anyhow::anyhow!("--config {}{at}: {}", path.display(), e.message())
        })
    }

    /// The settings as a TOML document that [`ConfigFile::read`] accepts.
    ///
    /// # Errors
    ///
    /// Only if a value has no TOML form, which none of the settings' types
    /// lacks.
    pub(super) fn to_toml(&self) -> anyhow::Result<String> {
        toml::to_string(self).context("writing the configuration as TOML")
    }
}

/// The 1-based line and column (in characters) of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (
        before.matches('\n').count() + 1,
        before[line_start..].chars().count() + 1,
    )
}

/// The top-level key whose name or value covers `span`, so that an error
/// inside a multi-line value (an array) still names its setting. `None` when
/// the text does not parse as TOML (the error is then about syntax, not a
/// setting).
fn key_at(text: &str, span: Range<usize>) -> Option<String> {
    let table = toml::de::DeTable::parse(text).ok()?;
    table
        .get_ref()
        .iter()
        .find(|(key, value)| {
            let covers =
                |s: Range<usize>| s.start <= span.start && span.start < s.end.max(s.start + 1);
            covers(key.span()) || covers(value.span())
        })
        .map(|(key, _)| key.get_ref().to_string())
}
