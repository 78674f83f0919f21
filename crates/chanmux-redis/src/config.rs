//! [`RedisLayerConfig`].

use std::time::Duration;

/// Settings of a [`RedisLayer`](crate::RedisLayer).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RedisLayerConfig {
    /// Prefix of every Redis channel the layer uses, so several applications
    /// can share one Redis. Default `"chanmux"`.
    pub prefix: String,
    /// How long an operation waits for Redis before failing with
    /// [`LayerError::Backend`](crate::LayerError::Backend). Default 5 s.
    pub operation_timeout: Duration,
    /// How many groups one channel (one consumer) may be in; `group_add`
    /// beyond it fails with `LayerError::TooManyGroups`. 0 means no limit.
    /// Default 1,000.
    pub max_groups_per_channel: usize,
}

impl Default for RedisLayerConfig {
    fn default() -> Self {
        RedisLayerConfig {
            prefix: "chanmux".to_owned(),
            operation_timeout: Duration::from_secs(5),
            max_groups_per_channel: chanmux_core::DEFAULT_MAX_GROUPS_PER_CHANNEL,
        }
    }
}

impl RedisLayerConfig {
    /// Sets [`prefix`](Self::prefix) (default `"chanmux"`).
    #[must_use]
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Sets [`max_groups_per_channel`](Self::max_groups_per_channel) (default 1,000).
    #[must_use]
    pub fn with_max_groups_per_channel(mut self, limit: usize) -> Self {
        self.max_groups_per_channel = limit;
        self
    }

    /// Sets [`operation_timeout`](Self::operation_timeout) (default 5 s).
    #[must_use]
    pub fn with_operation_timeout(mut self, timeout: Duration) -> Self {
        self.operation_timeout = timeout;
        self
    }
}
