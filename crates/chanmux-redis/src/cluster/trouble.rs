//! [`Trouble`]: why the cluster subscriptions are not (all) where they
//! should be. Logged, then put right by a sync.

use std::time::Duration;

use redis::RedisError;

use super::topology::{NodeAddr, TopologyError};

/// Why the desired state was not reached, or broke.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Trouble {
    /// No node answered `CLUSTER SLOTS` usefully.
    #[error("cannot read the cluster's topology: {0}")]
    Topology(#[from] TopologyError),
    /// A keepalive check read a topology other than the one in use.
    #[error("the cluster's topology changed")]
    TopologyChanged,
    /// The topology names no master for a wanted topic's slot.
    #[error("no master serves the slot of {0}")]
    NoMaster(String),
    /// A connection could not be made.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: NodeAddr,
        #[source]
        source: RedisError,
    },
    /// A node took longer than the operation timeout to connect or answer.
    #[error("{addr}: no answer within {wait:?}")]
    Timeout { addr: NodeAddr, wait: Duration },
    /// A node answered a cluster error (`MOVED`, `CLUSTERDOWN`, …).
    #[error("{addr} answered {source}")]
    Cluster {
        addr: NodeAddr,
        #[source]
        source: RedisError,
    },
    /// A connection failed or was closed.
    #[error("lost the connection to {0}")]
    Lost(NodeAddr),
    /// The server unsubscribed a topic we still want (its slot moved away).
    #[error("{0} unsubscribed a topic itself (its slot moved)")]
    Unsubscribed(NodeAddr),
}
