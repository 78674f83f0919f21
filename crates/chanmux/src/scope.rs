//! [`Scope`]: what a consumer knows about its connection.

use std::net::SocketAddr;

use http::{Extensions, HeaderMap};

/// Facts about one WebSocket connection, shared by every consumer on it.
///
/// Like an ASGI scope: the request path and query, headers, addresses, the
/// subprotocols the client asked for, path parameters captured by the router,
/// and typed extensions that middleware added (an authenticated user, say).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Scope {
    /// Request path, e.g. `/ws/`.
    pub path: String,
    /// Raw query string without the `?` (empty when there is none).
    pub query_string: String,
    /// Request headers of the upgrade request.
    pub headers: HeaderMap,
    /// The client's address, when the server recorded it.
    pub client: Option<SocketAddr>,
    /// The server's local address, when the server recorded it.
    pub server: Option<SocketAddr>,
    /// Subprotocols the client offered in `Sec-WebSocket-Protocol`, in order.
    pub subprotocols: Vec<String>,
    /// Path parameters captured by the HTTP router, in route order.
    pub path_params: Vec<(String, String)>,
    /// Typed values added by middleware (e.g. request extensions in axum).
    pub extensions: Extensions,
}

impl Scope {
    /// A scope for `path` with everything else empty.
    pub fn new(path: impl Into<String>) -> Self {
        Scope {
            path: path.into(),
            ..Scope::default()
        }
    }

    /// Sets the query string (without the `?`).
    #[must_use]
    pub fn with_query_string(mut self, query: impl Into<String>) -> Self {
        self.query_string = query.into();
        self
    }

    /// Sets the request headers.
    #[must_use]
    pub fn with_headers(mut self, headers: HeaderMap) -> Self {
        self.headers = headers;
        self
    }

    /// Adds one request header (as a browser would send, say an
    /// `authorization` or a `cookie`).
    ///
    /// # Panics
    ///
    /// If `name` or `value` is not a valid header name or value.
    #[must_use]
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        let name = http::HeaderName::from_bytes(name.as_bytes())
            .unwrap_or_else(|e| panic!("invalid header name {name:?}: {e}"));
        let value = http::HeaderValue::from_str(value)
            .unwrap_or_else(|e| panic!("invalid value for header {name}: {e}"));
        self.headers.append(name, value);
        self
    }

    /// Sets the subprotocols the client offered.
    #[must_use]
    pub fn with_subprotocols<I, S>(mut self, protocols: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.subprotocols = protocols.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the client and server addresses.
    #[must_use]
    pub fn with_addrs(mut self, client: Option<SocketAddr>, server: Option<SocketAddr>) -> Self {
        self.client = client;
        self.server = server;
        self
    }

    /// Adds a path parameter.
    #[must_use]
    pub fn with_path_param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.path_params.push((name.into(), value.into()));
        self
    }

    /// Adds a typed extension.
    #[must_use]
    pub fn with_extension<T: Clone + Send + Sync + 'static>(mut self, value: T) -> Self {
        self.extensions.insert(value);
        self
    }

    /// The value of path parameter `name`, if the router captured one.
    pub fn path_param(&self, name: &str) -> Option<&str> {
        self.path_params
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The first value of header `name` if it is valid visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Splits a `Sec-WebSocket-Protocol` header value into protocol names.
#[cfg(any(feature = "axum", test))]
pub(crate) fn parse_subprotocols(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(http::header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subprotocols_are_split_and_trimmed_across_headers() {
        let mut headers = HeaderMap::new();
        headers.append("sec-websocket-protocol", "a, b".parse().unwrap());
        headers.append("sec-websocket-protocol", " c ,".parse().unwrap());
        assert_eq!(parse_subprotocols(&headers), ["a", "b", "c"]);
    }

    #[test]
    fn path_params_and_headers_are_looked_up_by_name() {
        let mut headers = HeaderMap::new();
        headers.insert("x-user", "ann".parse().unwrap());
        let scope = Scope::new("/ws/7/")
            .with_path_param("room", "7")
            .with_headers(headers);
        assert_eq!(scope.path_param("room"), Some("7"));
        assert_eq!(scope.path_param("other"), None);
        assert_eq!(scope.header("x-user"), Some("ann"));
    }
}
