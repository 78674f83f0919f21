//! [`Declared`]: what a demultiplexer knows of one of its streams, built
//! once and shared by that stream's consumers on every connection.

use std::sync::{Arc, OnceLock};

use chanmux_core::StreamPrefix;

use crate::metrics::StreamHandles;

/// One declared stream: its name, its envelope prefix and its metrics.
///
/// Each stream's context holds one pointer to it, rather than one to each
/// part: an idle connection holds a context per stream.
pub(crate) struct Declared {
    pub(crate) name: Arc<str>,
    /// `{"stream":"<name>","payload":`, built once.
    pub(crate) prefix: StreamPrefix,
    /// Looked up at the stream's first connection, so that a metrics
    /// recorder installed after the demultiplexer was built still gets them.
    metrics: OnceLock<StreamHandles>,
}

impl Declared {
    pub(crate) fn new(name: Arc<str>) -> Self {
        Declared {
            prefix: StreamPrefix::new(&name),
            name,
            metrics: OnceLock::new(),
        }
    }

    /// The stream's metrics handles.
    pub(crate) fn metrics(&self) -> &StreamHandles {
        self.metrics.get_or_init(|| StreamHandles::new(&self.name))
    }
}
