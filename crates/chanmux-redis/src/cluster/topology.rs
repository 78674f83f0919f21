//! Which master serves which slots: read with `CLUSTER SLOTS` from any node
//! that answers.

use std::fmt;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{ConnectionAddr, ConnectionInfo, RedisError, Value};
use tokio::time::timeout;

/// Why no topology was read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TopologyError {
    /// There was no node to ask.
    #[error("no node to ask")]
    NoNode,
    /// A node could not be reached, or answered with an error.
    #[error("{node}: {source}")]
    Redis {
        node: NodeAddr,
        #[source]
        source: RedisError,
    },
    /// No node connected and answered within the operation timeout.
    #[error("no node answered within {0:?}")]
    NoAnswer(Duration),
    /// The reply was not shaped like a `CLUSTER SLOTS` reply.
    #[error("unexpected CLUSTER SLOTS reply from {0}")]
    Malformed(NodeAddr),
    /// The node does not know of any slot yet (a cluster being created).
    #[error("{0} serves no slots yet")]
    NoSlots(NodeAddr),
}

/// A node's address, as the cluster announces it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct NodeAddr {
    pub(crate) host: String,
    pub(crate) port: u16,
}

impl fmt::Display for NodeAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

impl NodeAddr {
    /// How to reach this node: `template`'s settings (credentials, TLS) at
    /// this node's host and port.
    pub(crate) fn connection_info(&self, template: &ConnectionInfo) -> ConnectionInfo {
        let (host, port) = (self.host.clone(), self.port);
        let addr = match template.addr() {
            ConnectionAddr::TcpTls {
                insecure,
                tls_params,
                ..
            } => ConnectionAddr::TcpTls {
                host,
                port,
                insecure: *insecure,
                tls_params: tls_params.clone(),
            },
            _ => ConnectionAddr::Tcp(host, port),
        };
        template.clone().set_addr(addr)
    }

    /// The address a seed's settings point at, if it is a network address.
    pub(crate) fn of(info: &ConnectionInfo) -> Option<NodeAddr> {
        match info.addr() {
            ConnectionAddr::Tcp(host, port) | ConnectionAddr::TcpTls { host, port, .. } => {
                Some(NodeAddr {
                    host: host.clone(),
                    port: *port,
                })
            }
            _ => None,
        }
    }
}

/// Slot ranges and their masters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Topology {
    /// `(first, last, master)`, sorted by `first`.
    ranges: Vec<(u16, u16, NodeAddr)>,
}

impl Topology {
    /// The master serving `slot`, if any does.
    pub(crate) fn master_of(&self, slot: u16) -> Option<&NodeAddr> {
        let i = self.ranges.partition_point(|(first, _, _)| *first <= slot);
        let (first, last, master) = self.ranges.get(i.checked_sub(1)?)?;
        (*first..=*last).contains(&slot).then_some(master)
    }

    /// Every master, once each.
    pub(crate) fn masters(&self) -> Vec<&NodeAddr> {
        let mut masters: Vec<&NodeAddr> = Vec::new();
        for (_, _, master) in &self.ranges {
            if !masters.contains(&master) {
                masters.push(master);
            }
        }
        masters
    }

    /// Parses a `CLUSTER SLOTS` reply from the node at `queried` (whose
    /// address stands for an empty or unknown announced IP, as Redis means it).
    pub(crate) fn parse(reply: &Value, queried: &NodeAddr) -> Result<Topology, TopologyError> {
        let malformed = || TopologyError::Malformed(queried.clone());
        let Value::Array(entries) = reply else {
            return Err(malformed());
        };
        let mut ranges = Vec::with_capacity(entries.len());
        for entry in entries {
            let Value::Array(fields) = entry else {
                return Err(malformed());
            };
            let (Some(first), Some(last), Some(Value::Array(master))) = (
                fields.first().and_then(int),
                fields.get(1).and_then(int),
                fields.get(2),
            ) else {
                return Err(malformed());
            };
            let (Some(host), Some(port)) =
                (master.first().and_then(text), master.get(1).and_then(int))
            else {
                return Err(malformed());
            };
            let host = match host.as_str() {
                "" | "?" => queried.host.clone(),
                _ => host,
            };
            ranges.push((first, last, NodeAddr { host, port }));
        }
        ranges.sort_by_key(|(first, _, _)| *first);
        Ok(Topology { ranges })
    }

    /// Reads the topology from the first of `candidates` to answer: all are
    /// asked at once, over new connections, so the whole read costs one
    /// `wait` at most, however many of them are down or hung.
    pub(crate) async fn fetch(
        candidates: &[NodeAddr],
        template: &ConnectionInfo,
        wait: Duration,
    ) -> Result<Topology, TopologyError> {
        let asks = candidates.iter().map(|node| {
            Box::pin(async move {
                let redis = |source| TopologyError::Redis {
                    node: node.clone(),
                    source,
                };
                let client = redis::Client::open(node.connection_info(template)).map_err(redis)?;
                let mut connection = client
                    .get_multiplexed_async_connection()
                    .await
                    .map_err(redis)?;
                Self::query(&mut connection, node).await
            })
        });
        first_answer(asks, wait).await
    }

    /// Reads the topology over `connection`, to `node` (the caller bounds
    /// the wait).
    pub(crate) async fn query(
        connection: &mut MultiplexedConnection,
        node: &NodeAddr,
    ) -> Result<Topology, TopologyError> {
        let reply: Value = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query_async(connection)
            .await
            .map_err(|source| TopologyError::Redis {
                node: node.clone(),
                source,
            })?;
        let topology = Topology::parse(&reply, node)?;
        if topology.ranges.is_empty() {
            return Err(TopologyError::NoSlots(node.clone()));
        }
        Ok(topology)
    }
}

fn int(value: &Value) -> Option<u16> {
    match value {
        Value::Int(n) => u16::try_from(*n).ok(),
        _ => None,
    }
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

/// The first topology any of `asks` reads, all run at once within `wait`.
pub(crate) async fn first_answer<F>(
    asks: impl IntoIterator<Item = F>,
    wait: Duration,
) -> Result<Topology, TopologyError>
where
    F: Future<Output = Result<Topology, TopologyError>> + Unpin,
{
    let asks: Vec<F> = asks.into_iter().collect();
    if asks.is_empty() {
        return Err(TopologyError::NoNode);
    }
    match timeout(wait, futures_util::future::select_ok(asks)).await {
        Ok(Ok((topology, _others))) => Ok(topology),
        Ok(Err(last)) => Err(last),
        Err(_) => Err(TopologyError::NoAnswer(wait)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(port: i64) -> Value {
        Value::Array(vec![
            Value::BulkString(b"127.0.0.1".to_vec()),
            Value::Int(port),
            Value::BulkString(b"id".to_vec()),
        ])
    }

    fn range(first: i64, last: i64, master: i64, replica: i64) -> Value {
        Value::Array(vec![
            Value::Int(first),
            Value::Int(last),
            node(master),
            node(replica),
        ])
    }

    #[test]
    fn every_slot_maps_to_its_ranges_master() {
        let reply = Value::Array(vec![
            range(10_923, 16_383, 7002, 7005),
            range(0, 5_460, 7000, 7003),
            range(5_461, 10_922, 7001, 7004),
        ]);
        let queried = NodeAddr {
            host: "127.0.0.1".into(),
            port: 7000,
        };
        let topology = Topology::parse(&reply, &queried).unwrap();
        let port = |slot| topology.master_of(slot).map(|m| m.port);
        assert_eq!(port(0), Some(7000));
        assert_eq!(port(5_460), Some(7000));
        assert_eq!(port(5_461), Some(7001));
        assert_eq!(port(16_383), Some(7002));
        assert_eq!(topology.masters().len(), 3);
    }

    #[test]
    fn an_unserved_slot_has_no_master_and_an_empty_ip_is_the_queried_host() {
        let reply = Value::Array(vec![Value::Array(vec![
            Value::Int(100),
            Value::Int(200),
            Value::Array(vec![Value::BulkString(Vec::new()), Value::Int(7000)]),
        ])]);
        let queried = NodeAddr {
            host: "10.0.0.5".into(),
            port: 7000,
        };
        let topology = Topology::parse(&reply, &queried).unwrap();
        assert_eq!(topology.master_of(99), None);
        assert_eq!(topology.master_of(201), None);
        assert_eq!(topology.master_of(150), Some(&queried));
        assert!(Topology::parse(&Value::Nil, &queried).is_err());
    }
}
