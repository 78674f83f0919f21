//! Log lines to stderr (stdout carries only the address lines), as text or
//! as JSON, filtered by `RUST_LOG`.
//!
//! `RUST_LOG` takes `target=level` directives separated by commas (e.g.
//! `info,chanmux=debug`); default `info`. A static filter rather than
//! tracing-subscriber's `EnvFilter`: `EnvFilter` looks every span up in a
//! locked map each time it is entered, and the connection and stream spans
//! are entered for every message (about 3 % more instructions per echoed
//! message under callgrind, see BENCHMARKS.md).

use std::str::FromStr;

use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use super::args::LogFormat;

/// Installs the process's log subscriber.
///
/// # Errors
///
/// When `RUST_LOG` is not a list of `target=level` directives.
pub(crate) fn init(format: LogFormat) -> anyhow::Result<()> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.trim().is_empty() => Targets::from_str(&directives)
            .map_err(|e| anyhow::anyhow!("RUST_LOG={directives:?}: {e}"))?,
        _ => Targets::new().with_default(tracing::Level::INFO),
    };
    let registry = tracing_subscriber::registry().with(filter);
    let lines = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    match format {
        LogFormat::Text => registry.with(lines).init(),
        // One object per line, with the spans (connection, stream) it was
        // logged in.
        LogFormat::Json => registry.with(lines.json().with_current_span(false)).init(),
    }
    Ok(())
}
