//! [`OriginPolicy`]: which web pages may open a WebSocket.
//!
//! Browsers send cookies with a WebSocket handshake whatever page opens it,
//! and the same-origin policy does not apply to WebSockets, so without this
//! check any site a logged-in user visits could open a socket as that user
//! (cross-site WebSocket hijacking). Browsers always send `Origin` on a
//! WebSocket handshake; other clients usually send none.

use std::fmt;

use http::HeaderMap;
use http::header::{HOST, ORIGIN};

/// Which `Origin` headers a connection may carry; checked before any consumer
/// starts, a refusal is answered with HTTP 403.
///
/// The default, [`same_host`](OriginPolicy::same_host), allows a request
/// with no `Origin` (a non-browser client) and one whose `Origin` names the
/// request's own `Host` (any scheme), and refuses every other origin.
///
/// ```
/// use chanmux::OriginPolicy;
///
/// let policy = OriginPolicy::same_host().allow("https://*.example.com");
/// assert!(policy.allows(Some("https://app.example.com"), Some("api.example.com")));
/// assert!(policy.allows(Some("http://api.example.com"), Some("api.example.com")));
/// assert!(policy.allows(None, Some("api.example.com")));
/// assert!(!policy.allows(Some("https://evil.example"), Some("api.example.com")));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct OriginPolicy {
    any: bool,
    patterns: Vec<OriginPattern>,
}

/// One allowed origin: `scheme://host[:port]`, where `*` in the host stands
/// for any run of characters but `/`, e.g. `https://*.example.com`.
#[derive(Clone, PartialEq, Eq)]
struct OriginPattern {
    /// Lower-cased, without a trailing slash.
    text: String,
}

impl OriginPolicy {
    /// Same host or no `Origin` only (the default).
    pub fn same_host() -> Self {
        OriginPolicy {
            any: false,
            patterns: Vec::new(),
        }
    }

    /// Every origin: any web page may open a socket with its visitor's
    /// cookies. Only for servers that authenticate by other means.
    pub fn any() -> Self {
        OriginPolicy {
            any: true,
            patterns: Vec::new(),
        }
    }

    /// Also allows origins matching `pattern` (`scheme://host[:port]`, `*`
    /// for any run of characters but `/` in the host); same host still passes.
    /// A pattern of `*` alone allows any origin, as [`any`](Self::any).
    #[must_use]
    pub fn allow(mut self, pattern: &str) -> Self {
        let text = pattern.trim().trim_end_matches('/').to_ascii_lowercase();
        if text == "*" {
            self.any = true;
        } else if !text.is_empty() {
            self.patterns.push(OriginPattern { text });
        }
        self
    }

    /// Whether every origin is allowed.
    pub fn allows_any(&self) -> bool {
        self.any
    }

    /// Whether a request with this `Origin` and `Host` may connect.
    pub fn allows(&self, origin: Option<&str>, host: Option<&str>) -> bool {
        let Some(origin) = origin else {
            return true;
        };
        if self.any {
            return true;
        }
        let origin = origin.trim().trim_end_matches('/');
        if host.is_some_and(|host| same_host(origin, host)) {
            return true;
        }
        self.patterns.iter().any(|p| p.matches(origin))
    }

    /// Checks the request headers; on refusal returns the origin, for the log.
    pub(crate) fn check<'h>(&self, headers: &'h HeaderMap) -> Result<(), &'h [u8]> {
        let origin = headers.get(ORIGIN);
        let as_text = origin.map(|v| v.to_str().unwrap_or("\u{fffd}"));
        let host = headers.get(HOST).and_then(|v| v.to_str().ok());
        if self.allows(as_text, host) {
            Ok(())
        } else {
            Err(origin.map_or(&[][..], |v| v.as_bytes()))
        }
    }
}

impl Default for OriginPolicy {
    fn default() -> Self {
        OriginPolicy::same_host()
    }
}

impl fmt::Debug for OriginPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.any {
            return f.write_str("OriginPolicy::any");
        }
        let patterns: Vec<&str> = self.patterns.iter().map(|p| p.text.as_str()).collect();
        f.debug_struct("OriginPolicy")
            .field("same_host", &true)
            .field("allowed", &patterns)
            .finish()
    }
}

/// Whether `origin` (`scheme://authority`) names the authority in `host`,
/// with the scheme's default port written out or not on either side.
fn same_host(origin: &str, host: &str) -> bool {
    let Some((scheme, authority)) = origin.split_once("://") else {
        return false;
    };
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "http" | "ws" => "80",
        "https" | "wss" => "443",
        _ => "",
    };
    let strip = |a: &str| -> String {
        let a = a.to_ascii_lowercase();
        match a.rsplit_once(':') {
            // Not the colon of a bare IPv6 address: that ends in `]`.
            Some((rest, port)) if port == default_port && !a.ends_with(']') => rest.to_owned(),
            _ => a,
        }
    };
    !authority.is_empty() && strip(authority) == strip(host.trim())
}

impl OriginPattern {
    /// Glob match, case-insensitive: `*` is any run of characters but `/`.
    fn matches(&self, origin: &str) -> bool {
        glob(self.text.as_bytes(), origin.to_ascii_lowercase().as_bytes())
    }
}

/// Iterative glob with backtracking to the last `*` (linear in practice,
/// at worst pattern length × text length; both are short header values).
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((sp, st)) = star.filter(|&(_, st)| text[st] != b'/') {
            // Let the last `*` take one more character, never a `/`.
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_origin_and_same_host_pass_by_default() {
        let policy = OriginPolicy::default();
        assert!(policy.allows(None, Some("example.com")));
        assert!(policy.allows(None, None));
        assert!(policy.allows(Some("https://example.com"), Some("example.com")));
        assert!(policy.allows(Some("http://Example.COM"), Some("example.com")));
        assert!(policy.allows(Some("https://example.com:443"), Some("example.com")));
        assert!(policy.allows(Some("https://example.com"), Some("example.com:443")));
        assert!(policy.allows(Some("http://127.0.0.1:8000"), Some("127.0.0.1:8000")));
        assert!(policy.allows(Some("http://[::1]:8000"), Some("[::1]:8000")));
        assert!(policy.allows(Some("http://[::1]"), Some("[::1]")));
    }

    #[test]
    fn other_origins_are_refused_by_default() {
        let policy = OriginPolicy::default();
        assert!(!policy.allows(Some("https://evil.example"), Some("example.com")));
        assert!(!policy.allows(Some("https://example.com"), None));
        assert!(!policy.allows(Some("http://127.0.0.1:8001"), Some("127.0.0.1:8000")));
        assert!(!policy.allows(Some("https://example.com.evil"), Some("example.com")));
        assert!(!policy.allows(Some("null"), Some("example.com")));
        assert!(!policy.allows(Some(""), Some("example.com")));
        assert!(!policy.allows(Some("https://"), Some("")));
    }

    #[test]
    fn patterns_match_with_wildcards() {
        let policy = OriginPolicy::same_host()
            .allow("https://*.example.com")
            .allow("http://localhost:3000/");
        assert!(policy.allows(Some("https://a.example.com"), Some("api.test")));
        assert!(policy.allows(Some("https://a.b.example.com"), Some("api.test")));
        assert!(policy.allows(Some("HTTPS://A.Example.com"), Some("api.test")));
        assert!(policy.allows(Some("http://localhost:3000"), Some("api.test")));
        assert!(!policy.allows(Some("http://a.example.com"), Some("api.test")));
        assert!(!policy.allows(Some("https://example.com"), Some("api.test")));
        assert!(!policy.allows(Some("https://a.example.com.evil"), Some("api.test")));
        assert!(!policy.allows(Some("https://evil/x.example.com"), Some("api.test")));
        assert!(!policy.allows(Some("http://localhost:3001"), Some("api.test")));
        // Same host still passes with patterns given.
        assert!(policy.allows(Some("https://api.test"), Some("api.test")));
    }

    #[test]
    fn any_allows_everything() {
        assert!(OriginPolicy::any().allows(Some("https://evil.example"), Some("x")));
        let star = OriginPolicy::same_host().allow("*");
        assert!(star.allows_any());
        assert!(star.allows(Some("https://evil.example"), Some("x")));
        assert!(!OriginPolicy::default().allows_any());
    }

    #[test]
    fn glob_backtracks() {
        assert!(glob(b"a*b*c", b"aXbYbZc"));
        assert!(!glob(b"a*b*c", b"aXbYbZ"));
        assert!(glob(b"*", b""));
        assert!(glob(b"**x", b"yyx"));
    }
}
