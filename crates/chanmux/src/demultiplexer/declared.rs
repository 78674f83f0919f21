//! [`Declared`]: what a demultiplexer knows of one of its streams, built
//! once and shared by that stream's consumers on every connection.

use std::sync::{Arc, OnceLock};

use chanmux_core::StreamPrefix;

use crate::metrics::StreamHandles;

/// One declared stream (or pattern): its name, its envelope prefix and its
/// metrics.
///
/// Each stream's context holds one pointer to it, rather than one to each
/// part: an idle connection holds a context per stream.
pub(crate) struct Declared {
    /// The stream's name, or a pattern as written (`room:{id}`): also its
    /// metrics label, so a pattern's streams share one set of series.
    pub(crate) name: Arc<str>,
    /// `{"stream":"<name>","payload":`, built once (unused for a pattern,
    /// whose streams each build their own).
    pub(crate) prefix: StreamPrefix,
    /// Its place among the demultiplexer's entries.
    pub(crate) index: usize,
    /// Looked up at the stream's first connection, so that a metrics
    /// recorder installed after the demultiplexer was built still gets them.
    metrics: OnceLock<StreamHandles>,
}

impl Declared {
    pub(crate) fn new(name: Arc<str>, index: usize) -> Self {
        Declared {
            prefix: StreamPrefix::new(&name),
            name,
            index,
            metrics: OnceLock::new(),
        }
    }

    /// The stream's metrics handles.
    pub(crate) fn metrics(&self) -> &StreamHandles {
        self.metrics.get_or_init(|| StreamHandles::new(&self.name))
    }
}
