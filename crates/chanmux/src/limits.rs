//! [`ConnectionLimits`]: how many WebSockets may be open at once, in all and
//! from one client address.
//!
//! Checked when a connection asks to upgrade, before any consumer starts;
//! the slot is held by the connection for its whole life and freed when it
//! ends, however it ends.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use ipnet::IpNet;

use crate::Scope;

/// Limits on open connections; clones share their counts.
///
/// Defaults: 10,000 connections in all, 1,000 from one address, no trusted
/// proxies. Over the total the upgrade is answered with HTTP 503 (with
/// `Retry-After`), over the per-address limit with 429.
///
/// The client address is the socket's peer, unless that peer is a
/// [trusted proxy](ConnectionLimits::trust_proxy): then `X-Forwarded-For`
/// decides (its last address that is not itself a trusted proxy). Behind a
/// proxy that is not trusted, every client has the proxy's address.
#[derive(Clone)]
pub struct ConnectionLimits {
    inner: Arc<Inner>,
}

struct Inner {
    max_total: usize,
    max_per_address: usize,
    trusted: Vec<IpNet>,
    live: AtomicUsize,
    per_address: Mutex<HashMap<IpAddr, usize>>,
}

/// A trusted-proxy range that did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an IP address or CIDR range: {0:?}")]
pub struct InvalidProxy(String);

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OverLimit {
    Total,
    Address,
}

/// A connection's slot; freed on drop.
pub(crate) struct Admission {
    inner: Arc<Inner>,
    address: Option<IpAddr>,
}

impl ConnectionLimits {
    /// At most `max_total` connections, and `max_per_address` from one
    /// client address; 0 means no limit.
    pub fn new(max_total: usize, max_per_address: usize) -> Self {
        ConnectionLimits {
            inner: Arc::new(Inner {
                max_total: if max_total == 0 {
                    usize::MAX
                } else {
                    max_total
                },
                max_per_address: if max_per_address == 0 {
                    usize::MAX
                } else {
                    max_per_address
                },
                trusted: Vec::new(),
                live: AtomicUsize::new(0),
                per_address: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// No limits at all.
    pub fn unlimited() -> Self {
        ConnectionLimits::new(0, 0)
    }

    /// Trusts the proxies at `range` (an address or a CIDR range such as
    /// `10.0.0.0/8`) to say in `X-Forwarded-For` who their client is.
    /// Returns new limits with counts of their own.
    ///
    /// # Errors
    ///
    /// When `range` is neither an address nor a range.
    pub fn trust_proxy(self, range: &str) -> Result<Self, InvalidProxy> {
        let range = range.trim();
        let net = IpNet::from_str(range)
            .or_else(|_| IpAddr::from_str(range).map(IpNet::from))
            .map_err(|_| InvalidProxy(range.to_owned()))?;
        let mut trusted = self.inner.trusted.clone();
        trusted.push(net);
        Ok(ConnectionLimits {
            inner: Arc::new(Inner {
                max_total: self.inner.max_total,
                max_per_address: self.inner.max_per_address,
                trusted,
                live: AtomicUsize::new(0),
                per_address: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// Connections holding a slot now.
    pub fn live(&self) -> usize {
        self.inner.live.load(Ordering::Acquire)
    }

    /// The client's address for `scope`: the peer, or what trusted proxies
    /// say in `X-Forwarded-For`. `None` when the server recorded no peer.
    pub fn client_address(&self, scope: &Scope) -> Option<IpAddr> {
        let peer = scope.client?.ip();
        if !self.is_trusted(peer) {
            return Some(peer);
        }
        // Each proxy appends the address it received from; read from the
        // nearest one back, stopping at the first that is not trusted.
        let mut client = peer;
        for value in scope.headers.get_all("x-forwarded-for").iter().rev() {
            let Ok(value) = value.to_str() else {
                return Some(client);
            };
            for hop in value.rsplit(',') {
                match IpAddr::from_str(hop.trim()) {
                    Ok(hop) => {
                        client = hop;
                        if !self.is_trusted(hop) {
                            return Some(client);
                        }
                    }
                    Err(_) => return Some(client),
                }
            }
        }
        Some(client)
    }

    fn is_trusted(&self, address: IpAddr) -> bool {
        let address = canonical(address);
        self.inner.trusted.iter().any(|net| net.contains(&address))
    }

    /// Takes a slot for a connection with `scope`, or says which limit is full.
    pub(crate) fn admit(&self, scope: &Scope) -> Result<Admission, OverLimit> {
        let inner = &self.inner;
        let taken = inner
            .live
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |live| {
                (live < inner.max_total).then_some(live + 1)
            });
        if taken.is_err() {
            return Err(OverLimit::Total);
        }
        let mut admission = Admission {
            inner: inner.clone(),
            address: None,
        };
        if inner.max_per_address != usize::MAX
            && let Some(address) = self.client_address(scope).map(canonical)
        {
            let mut counts = inner.per_address();
            let count = counts.entry(address).or_insert(0);
            if *count >= inner.max_per_address {
                // Dropping the admission frees the total slot.
                return Err(OverLimit::Address);
            }
            *count += 1;
            admission.address = Some(address);
        }
        Ok(admission)
    }
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits::new(10_000, 1_000)
    }
}

impl Inner {
    fn per_address(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        // Only map updates run under this lock; nothing in them panics.
        self.per_address.lock().expect("never poisoned")
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        if let Some(address) = self.address {
            let mut counts = self.inner.per_address();
            if let Some(count) = counts.get_mut(&address) {
                *count -= 1;
                if *count == 0 {
                    counts.remove(&address);
                }
            }
        }
        self.inner.live.fetch_sub(1, Ordering::AcqRel);
    }
}

/// An IPv4 address written as IPv6 (`::ffff:a.b.c.d`, as a dual-stack
/// listener reports it) counts as the IPv4 address.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        v4 => v4,
    }
}

impl fmt::Debug for ConnectionLimits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let limit = |n: usize| (n != usize::MAX).then_some(n);
        f.debug_struct("ConnectionLimits")
            .field("max_total", &limit(self.inner.max_total))
            .field("max_per_address", &limit(self.inner.max_per_address))
            .field("trusted_proxies", &self.inner.trusted)
            .field("live", &self.live())
            .finish()
    }
}

impl fmt::Debug for Admission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Admission")
            .field("address", &self.address)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn scope(peer: &str, forwarded: &[&str]) -> Scope {
        let mut scope = Scope::new("/ws/");
        scope.client = Some(format!("{peer}:5000").parse().unwrap());
        for value in forwarded {
            scope
                .headers
                .append("x-forwarded-for", HeaderValue::from_str(value).unwrap());
        }
        scope
    }

    #[test]
    fn total_limit_refuses_then_frees() {
        let limits = ConnectionLimits::new(2, 0);
        let a = limits.admit(&scope("127.0.0.1", &[])).unwrap();
        let _b = limits.admit(&scope("127.0.0.2", &[])).unwrap();
        assert_eq!(
            limits.admit(&scope("127.0.0.3", &[])).unwrap_err(),
            OverLimit::Total
        );
        assert_eq!(limits.live(), 2);
        drop(a);
        assert_eq!(limits.live(), 1);
        assert!(limits.admit(&scope("127.0.0.3", &[])).is_ok());
    }

    #[test]
    fn per_address_limit_refuses_then_frees() {
        let limits = ConnectionLimits::new(0, 2);
        let a = limits.admit(&scope("10.0.0.1", &[])).unwrap();
        let _b = limits.admit(&scope("10.0.0.1", &[])).unwrap();
        let refused = limits.admit(&scope("10.0.0.1", &[]));
        assert_eq!(refused.unwrap_err(), OverLimit::Address);
        // The refused attempt gave its total slot back.
        assert_eq!(limits.live(), 2);
        assert!(limits.admit(&scope("10.0.0.2", &[])).is_ok());
        drop(a);
        let _c = limits.admit(&scope("10.0.0.1", &[])).unwrap();
        // IPv4-mapped IPv6 counts as the same address.
        assert_eq!(
            limits.admit(&scope("[::ffff:10.0.0.1]", &[])).unwrap_err(),
            OverLimit::Address
        );
    }

    #[test]
    fn forwarded_for_counts_only_from_trusted_proxies() {
        let direct = ConnectionLimits::default();
        let spoofed = scope("203.0.113.9", &["198.51.100.1"]);
        assert_eq!(
            direct.client_address(&spoofed),
            Some("203.0.113.9".parse().unwrap())
        );

        let behind = ConnectionLimits::default()
            .trust_proxy("127.0.0.1")
            .unwrap()
            .trust_proxy("10.0.0.0/8")
            .unwrap();
        // Client, then a trusted hop, as nginx chains would append them.
        let chained = scope("127.0.0.1", &["198.51.100.7, 10.1.2.3"]);
        assert_eq!(
            behind.client_address(&chained),
            Some("198.51.100.7".parse().unwrap())
        );
        // A client cannot hide behind a forged left-most entry.
        let forged = scope("127.0.0.1", &["1.1.1.1", "198.51.100.7"]);
        assert_eq!(
            behind.client_address(&forged),
            Some("198.51.100.7".parse().unwrap())
        );
        // No header: the proxy itself.
        assert_eq!(
            behind.client_address(&scope("10.9.9.9", &[])),
            Some("10.9.9.9".parse().unwrap())
        );
        // Garbage stops the walk at the last good hop.
        let garbage = scope("127.0.0.1", &["nonsense"]);
        assert_eq!(
            behind.client_address(&garbage),
            Some("127.0.0.1".parse().unwrap())
        );
        assert!(
            ConnectionLimits::default()
                .trust_proxy("not an address")
                .is_err()
        );
    }

    #[test]
    fn unknown_peer_counts_toward_the_total_only() {
        let limits = ConnectionLimits::new(0, 1);
        let _a = limits.admit(&Scope::new("/")).unwrap();
        assert!(limits.admit(&Scope::new("/")).is_ok());
    }
}
