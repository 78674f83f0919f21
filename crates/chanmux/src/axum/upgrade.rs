//! The HTTP side of a WebSocket handshake (RFC 6455, section 4.2): checking
//! the upgrade request and answering it with 101.
//!
//! Done here rather than with axum's `WebSocketUpgrade` so the upgraded
//! connection's bytes pass through [`Metered`](super::socket::Metered),
//! which the message timeout needs, and so the WebSocket library's errors
//! reach us with their kind.

use axum::body::Body;
use axum::response::Response;
use http::header::{
    CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_PROTOCOL,
    SEC_WEBSOCKET_VERSION, UPGRADE,
};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, StatusCode};
use hyper::upgrade::OnUpgrade;
use tungstenite::handshake::derive_accept_key;

/// A valid upgrade request, taken apart.
pub(super) struct Upgrade {
    key: HeaderValue,
    pub(super) on_upgrade: OnUpgrade,
}

/// Checks that `parts` asks for a WebSocket (HTTP/1.1 `GET` with
/// `Connection: upgrade`, `Upgrade: websocket`, version 13 and a key), and
/// takes what completing the upgrade needs. The error is the status to
/// answer with: 405 for another method, 426 when the connection cannot be
/// upgraded, else 400.
pub(super) fn check(parts: &mut Parts) -> Result<Upgrade, StatusCode> {
    if parts.method != http::Method::GET {
        return Err(StatusCode::METHOD_NOT_ALLOWED);
    }
    if !has_token(&parts.headers, CONNECTION, "upgrade")
        || !has_token(&parts.headers, UPGRADE, "websocket")
    {
        return Err(StatusCode::UPGRADE_REQUIRED);
    }
    let version_13 = parts
        .headers
        .get(SEC_WEBSOCKET_VERSION)
        .is_some_and(|v| v.as_bytes() == b"13");
    if !version_13 {
        return Err(StatusCode::BAD_REQUEST);
    }
    let key = parts
        .headers
        .get(SEC_WEBSOCKET_KEY)
        .cloned()
        .ok_or(StatusCode::BAD_REQUEST)?;
    let on_upgrade = parts
        .extensions
        .remove::<OnUpgrade>()
        .ok_or(StatusCode::UPGRADE_REQUIRED)?;
    Ok(Upgrade { key, on_upgrade })
}

impl Upgrade {
    /// The 101 response, with the chosen subprotocol if any.
    pub(super) fn response(&self, protocol: Option<&str>) -> Response {
        let accept = derive_accept_key(self.key.as_bytes());
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let headers = response.headers_mut();
        headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(
            SEC_WEBSOCKET_ACCEPT,
            HeaderValue::from_str(&accept).expect("base64 is a valid header value"),
        );
        if let Some(protocol) = protocol.and_then(|p| HeaderValue::from_str(p).ok()) {
            headers.insert(SEC_WEBSOCKET_PROTOCOL, protocol);
        }
        response
    }
}

/// Whether the comma-separated header `name` holds `token` (any case).
fn has_token(headers: &HeaderMap, name: http::header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|value| {
        value
            .as_bytes()
            .split(|&b| b == b',')
            .any(|part| part.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(headers: &[(&str, &str)]) -> Parts {
        let mut request = http::Request::get("/ws/");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let mut request = request.body(()).unwrap();
        // Stands in for what hyper puts there for an upgradable request.
        let on_upgrade = hyper::upgrade::on(&mut request);
        let (mut parts, ()) = request.into_parts();
        parts.extensions.insert(on_upgrade);
        parts
    }

    const VALID: [(&str, &str); 4] = [
        ("connection", "keep-alive, Upgrade"),
        ("upgrade", "WebSocket"),
        ("sec-websocket-version", "13"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];

    #[test]
    fn a_valid_request_is_answered_with_the_rfc_accept_key() {
        let upgrade = check(&mut parts(&VALID)).unwrap();
        let response = upgrade.response(Some("chat"));
        assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
        // RFC 6455's own example.
        assert_eq!(
            response.headers()[SEC_WEBSOCKET_ACCEPT],
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        assert_eq!(response.headers()[SEC_WEBSOCKET_PROTOCOL], "chat");
    }

    #[test]
    fn invalid_requests_get_their_status() {
        for (skip, status) in [
            (0, StatusCode::UPGRADE_REQUIRED),
            (1, StatusCode::UPGRADE_REQUIRED),
            (2, StatusCode::BAD_REQUEST),
            (3, StatusCode::BAD_REQUEST),
        ] {
            let headers: Vec<_> = VALID
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != skip)
                .map(|(_, h)| *h)
                .collect();
            assert_eq!(
                check(&mut parts(&headers)).err(),
                Some(status),
                "without {skip}"
            );
        }
        let mut post = parts(&VALID);
        post.method = http::Method::POST;
        assert_eq!(check(&mut post).err(), Some(StatusCode::METHOD_NOT_ALLOWED));
    }
}
