//! Log lines to stderr (stdout carries only the address line), filtered by
//! `RUST_LOG` (default `info`), as text or as JSON.

use tracing_subscriber::EnvFilter;

use super::args::LogFormat;

/// Installs the process's log subscriber.
pub(crate) fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    match format {
        LogFormat::Text => logs.init(),
        // One object per line, with the spans (connection, stream) the line
        // was logged in.
        LogFormat::Json => logs.json().with_current_span(false).init(),
    }
}
