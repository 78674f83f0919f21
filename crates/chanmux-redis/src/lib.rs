//! A Redis channel layer for channels-multiplexer: groups and channel sends
//! across processes and machines, over Redis pub/sub.
//!
//! ```no_run
//! use chanmux::{Consumer, Demultiplexer};
//! use chanmux_redis::RedisLayer;
//!
//! struct Quiet;
//! impl Consumer for Quiet {}
//!
//! # async fn doc_main() -> Result<(), chanmux_redis::ConnectError> {
//! // Fails at once, with the reason, when Redis cannot be reached.
//! let layer = RedisLayer::connect("redis://127.0.0.1:6379/").await?;
//! let demux = Demultiplexer::builder()
//!     .stream("quiet", || Quiet)
//!     .channel_layer(layer)
//!     .build();
//! # Ok(())
//! # }
//! ```
//!
//! # How it works
//!
//! Every layer instance (one per process, usually) has a random id; its
//! channels are named `<id>.<n>` and it subscribes to one Redis channel for
//! all of them, `<prefix>:p:<id>`. A group has the Redis channel
//! `<prefix>:g:<group>`, which an instance subscribes to while it has local
//! members; a group send is one `PUBLISH`, and each subscribed instance hands
//! the message to its local members. Membership lives in the processes, not
//! in Redis: it ends with the consumer, and with the process, so nothing in
//! Redis can go stale and nothing needs to expire.
//!
//! # Redis Cluster
//!
//! [`RedisLayer::connect_cluster`] takes a cluster's seed nodes (Redis 7+)
//! and uses sharded pub/sub: a group send is one `SPUBLISH` on the master
//! serving the group channel's slot, and an instance `SSUBSCRIBE`s, on one
//! connection per such master, only to the channels it needs, so adding
//! shards adds throughput. When a master fails and its replica takes over,
//! or a slot moves, the instance reads the topology again and subscribes on
//! the new master (retrying with backoff; [`RedisLayer::is_connected`] is
//! false until done); messages sent meanwhile are lost.
//!
//! # Guarantees and faults
//!
//! Those of every layer ([`chanmux_core::layer`]): at most once, in order per
//! sender. In addition:
//!
//! - Unreachable at start: [`RedisLayer::connect`] returns a [`ConnectError`].
//! - Lost while running: sends fail with [`LayerError::Backend`] and what they
//!   carried is lost; messages published by others meanwhile are lost for this
//!   instance. The layer reconnects in the background (backing off up to 2 s),
//!   subscribes again to every channel it needs, and delivery resumes; the
//!   process stays up. [`RedisLayer::is_connected`] tells the state. An idle
//!   subscription connection is checked with a PING every 10 s, so one that
//!   died silently is noticed too.
//! - A `group_add` during an outage records the membership at once and waits
//!   up to the operation timeout for Redis to come back; if it does not, it
//!   returns [`LayerError::Backend`], and the subscription is still made when
//!   Redis returns.
//! - A topic Redis refuses (an ACL, say) fails that `group_add` only.

mod cluster;
mod config;
mod layer;
mod subscriber;
#[cfg(feature = "test-util")]
pub mod testing;

pub use config::RedisLayerConfig;
pub use layer::{ConnectError, RedisLayer};

pub use chanmux_core::layer::LayerError;
