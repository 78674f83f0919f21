//! Redis Cluster support: sharded pub/sub (`SSUBSCRIBE`/`SPUBLISH`, Redis 7+).
//!
//! Every Redis channel the layer uses hashes to a slot, and a slot to the
//! master serving it: a group's messages go only through its shard, so
//! adding shards adds throughput (plain `PUBLISH` in a cluster reaches every
//! node). Publishing goes through redis-rs's cluster connection, which
//! routes by slot and follows `MOVED` and failovers. Subscribing is done
//! here, on one connection per master that serves a wanted topic, because
//! the layer must know when a subscription is live (for `group_add` and
//! `is_up`) and must notice a failover even when it publishes nothing.

pub(crate) mod pushes;
pub(crate) mod shards;
pub(crate) mod slot;
pub(crate) mod subscriber;
pub(crate) mod topology;
pub(crate) mod trouble;
