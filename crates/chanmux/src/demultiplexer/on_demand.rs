//! [`OnDemand`]: what a stream started by the client knows that a declared
//! stream does not: the name that started it, its captures and params.

use std::sync::OnceLock;

use chanmux_core::StreamPrefix;

/// A stream started by a `subscribe` or by a first data frame.
pub(crate) struct OnDemand {
    /// The name the client used (for a pattern, the one that matched).
    pub(crate) name: Box<str>,
    /// `{"stream":"<name>","payload":`.
    pub(crate) prefix: StreamPrefix,
    /// What a pattern's `{name}`s captured, in pattern order.
    captures: Box<[(Box<str>, Box<str>)]>,
    /// The subscribe's `params`, as JSON text.
    pub(crate) params: Option<Box<str>>,
    /// Set when the consumer refused (or failed to start): the message
    /// frames queued for it are answered with.
    refusal: OnceLock<String>,
}

impl OnDemand {
    pub(crate) fn new(name: &str, captures: Vec<(&str, &str)>, params: Option<&str>) -> Self {
        OnDemand {
            name: name.into(),
            prefix: StreamPrefix::new(name),
            captures: captures
                .into_iter()
                .map(|(key, value)| (key.into(), value.into()))
                .collect(),
            params: params.map(Into::into),
            refusal: OnceLock::new(),
        }
    }

    pub(crate) fn capture(&self, name: &str) -> Option<&str> {
        self.captures
            .iter()
            .find(|(key, _)| **key == *name)
            .map(|(_, value)| &**value)
    }

    /// Records why the stream did not start (the first reason wins).
    pub(crate) fn set_refusal(&self, message: String) {
        let _ = self.refusal.set(message);
    }

    pub(crate) fn refusal(&self) -> Option<String> {
        self.refusal.get().cloned()
    }
}
