//! [`Declared`]: what a demultiplexer knows of one of its streams, built
//! once and shared by that stream's consumers on every connection.

use std::sync::Arc;

use chanmux_core::StreamPrefix;

use crate::metrics::StreamMetrics;

/// One declared stream: its name, its envelope prefix and its metrics.
///
/// Each stream's context holds one pointer to it, rather than one to each
/// part: an idle connection holds a context per stream.
pub(crate) struct Declared {
    pub(crate) name: Arc<str>,
    /// `{"stream":"<name>","payload":`, built once.
    pub(crate) prefix: StreamPrefix,
    pub(crate) metrics: StreamMetrics,
}

impl Declared {
    pub(crate) fn new(name: Arc<str>) -> Self {
        Declared {
            prefix: StreamPrefix::new(&name),
            metrics: StreamMetrics::new(name.clone()),
            name,
        }
    }
}
