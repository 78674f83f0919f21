//! `serve` with TLS (feature `tls`): `wss://` with a certificate made at
//! test time, plain clients failing cleanly, clients stalling in the TLS
//! handshake cut off at the handshake timeout without holding up anyone
//! else, and a handshake that ends during the drain.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use chanmux::axum::{ServeConfig, TlsConfig, websocket};
use chanmux::{Demultiplexer, Shutdown};
use futures_util::{SinkExt, StreamExt};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

use super::{WAIT, serve_with};
use crate::support::*;

/// A certificate for `localhost`, its PEM files (in a directory that lives
/// as long as this) and a client that trusts it.
struct TestCertificate {
    _dir: tempfile::TempDir,
    tls: TlsConfig,
    connector: TlsConnector,
}

impl TestCertificate {
    fn new() -> Self {
        let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&cert, made.cert.pem()).unwrap();
        std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
        let tls = TlsConfig::from_pem_files(&cert, &key).unwrap();
        TestCertificate {
            _dir: dir,
            tls,
            connector: connector(made.cert.der().clone()),
        }
    }

    /// Opens TCP and runs the client side of the TLS handshake.
    async fn connect(&self, addr: SocketAddr) -> TlsStream<TcpStream> {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        tokio::time::timeout(WAIT, self.connector.connect(name, tcp))
            .await
            .expect("TLS handshake in time")
            .expect("TLS handshake")
    }
}

/// A TLS client that trusts `cert` alone and offers HTTP/2 before
/// HTTP/1.1, as browsers do.
fn connector(cert: CertificateDer<'static>) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    TlsConnector::from(Arc::new(config))
}

fn echo_app() -> Router {
    let demux = Demultiplexer::builder()
        .stream("echo", || Echo)
        .stream("altecho", || AltEcho)
        .build();
    Router::new().route("/ws/", websocket(demux))
}

async fn serve_tls(certificate: &TestCertificate, handshake_timeout: Duration) -> SocketAddr {
    let config = ServeConfig::default()
        .with_handshake_timeout(handshake_timeout)
        .with_tls(certificate.tls.clone());
    serve_with(echo_app(), config).await
}

/// A `wss://` WebSocket over `tls`.
async fn websocket_over(
    tls: TlsStream<TcpStream>,
    addr: SocketAddr,
) -> WebSocketStream<TlsStream<TcpStream>> {
    let url = format!("wss://localhost:{}/ws/", addr.port());
    let (client, response) = tokio::time::timeout(WAIT, tokio_tungstenite::client_async(url, tls))
        .await
        .expect("WebSocket handshake in time")
        .expect("WebSocket handshake");
    assert_eq!(response.status(), 101);
    client
}

async fn echo(client: &mut WebSocketStream<TlsStream<TcpStream>>, text: &str) {
    let frame = format!(r#"{{"stream":"echo","payload":"{text}"}}"#);
    client.send(Message::text(frame.clone())).await.unwrap();
    match tokio::time::timeout(WAIT, client.next()).await.unwrap() {
        Some(Ok(Message::Text(reply))) => assert_eq!(reply.as_str(), frame),
        other => panic!("expected the echo, got {other:?}"),
    }
}

#[tokio::test]
async fn a_wss_client_exchanges_demultiplexed_frames_over_http_1_1() {
    let certificate = TestCertificate::new();
    let addr = serve_tls(&certificate, Duration::from_secs(10)).await;
    let tls = certificate.connect(addr).await;
    // Offered h2 first; the server speaks HTTP/1.1 alone and says so.
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let mut client = websocket_over(tls, addr).await;
    echo(&mut client, "over TLS").await;
    client
        .send(Message::text(r#"{"stream":"altecho","payload":{"n":1}}"#))
        .await
        .unwrap();
    match tokio::time::timeout(WAIT, client.next()).await.unwrap() {
        Some(Ok(Message::Text(reply))) => assert_eq!(
            serde_json::from_str::<serde_json::Value>(&reply).unwrap(),
            serde_json::json!({"stream": "altecho", "payload": {"received": {"n": 1}, "alt_value": 123}})
        ),
        other => panic!("expected altecho's reply, got {other:?}"),
    }
    // An error frame comes back encrypted like the rest.
    client
        .send(Message::text(r#"{"stream":"nope","payload":1}"#))
        .await
        .unwrap();
    match tokio::time::timeout(WAIT, client.next()).await.unwrap() {
        Some(Ok(Message::Text(reply))) => {
            let reply: serde_json::Value = serde_json::from_str(&reply).unwrap();
            assert_eq!(reply["error"]["code"], "unknown_stream");
        }
        other => panic!("expected an error frame, got {other:?}"),
    }
    client.close(None).await.unwrap();
}

#[tokio::test]
async fn https_requests_are_served_with_keep_alive() {
    let certificate = TestCertificate::new();
    let addr = serve_tls(&certificate, Duration::from_secs(10)).await;
    let mut tls = certificate.connect(addr).await;
    // Two requests on one connection: a plain GET of the WebSocket route
    // (no upgrade headers) gets axum's refusal, and the connection stays.
    for _ in 0..2 {
        tls.write_all(b"GET /ws/ HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .unwrap();
        let mut head = [0u8; 12];
        tokio::time::timeout(WAIT, tls.read_exact(&mut head))
            .await
            .unwrap()
            .unwrap();
        assert!(head.starts_with(b"HTTP/1.1 4"), "{head:?}");
        // Skip the rest of the (small) response.
        let mut rest = [0u8; 4096];
        let _ = tls.read(&mut rest).await.unwrap();
    }
}

#[tokio::test]
async fn a_plain_client_against_a_tls_server_fails_cleanly_and_others_go_on() {
    let certificate = TestCertificate::new();
    let addr = serve_tls(&certificate, Duration::from_secs(10)).await;
    // A ws:// client: its HTTP request is not a TLS ClientHello.
    let attempt = tokio::time::timeout(
        WAIT,
        tokio_tungstenite::connect_async(format!("ws://{addr}/ws/")),
    )
    .await
    .expect("the plain client hears back in time, not left hanging");
    assert!(
        attempt.is_err(),
        "a plain WebSocket handshake succeeded over TLS"
    );
    // Raw: the server answers garbage with at most an alert, then closes.
    let mut plain = TcpStream::connect(addr).await.unwrap();
    plain
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut received = Vec::new();
    tokio::time::timeout(WAIT, plain.read_to_end(&mut received))
        .await
        .expect("closed by the server")
        .ok();
    assert!(!received.starts_with(b"HTTP/"), "answered in plain text");
    // The server goes on serving TLS clients.
    let mut client = websocket_over(certificate.connect(addr).await, addr).await;
    echo(&mut client, "still here").await;
}

/// How long `socket` stays open from `since` until the server closes it
/// (EOF or reset), at most [`WAIT`].
async fn closed_after(socket: &mut (impl AsyncReadExt + Unpin), since: Instant) -> Duration {
    let mut buffer = [0u8; 1024];
    tokio::time::timeout(WAIT, async {
        loop {
            match socket.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await
    .expect("closed by the server");
    since.elapsed()
}

#[tokio::test]
async fn clients_stalling_in_the_tls_handshake_or_after_it_are_dropped_at_the_timeout() {
    const TIMEOUT: Duration = Duration::from_secs(3);
    let certificate = TestCertificate::new();
    let addr = serve_tls(&certificate, TIMEOUT).await;
    let started = Instant::now();
    // Opens TCP and never starts TLS.
    let mut silent = TcpStream::connect(addr).await.unwrap();
    // Starts a ClientHello (a record header announcing 512 bytes, one of
    // them sent) and stalls: TLS's slowloris.
    let mut half_hello = TcpStream::connect(addr).await.unwrap();
    half_hello
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .await
        .unwrap();
    // Completes TLS, then never sends a request head.
    let mut no_head = certificate.connect(addr).await;
    // Starts TLS halfway through the timeout, then sends no head: the TLS
    // handshake and the head share the timeout, so this one is closed at
    // the same time as the others, not a whole timeout after its TLS.
    let tcp = TcpStream::connect(addr).await.unwrap();
    let connector = certificate.connector.clone();
    let late = tokio::spawn(async move {
        tokio::time::sleep(TIMEOUT / 2).await;
        let name = ServerName::try_from("localhost").unwrap();
        let mut tls = connector.connect(name, tcp).await.unwrap();
        closed_after(&mut tls, started).await
    });

    // The stalled handshakes run in their own tasks: a new client is
    // served at once, while they are all still open (were they in the
    // accept loop, this client would wait for them to time out).
    let mut client = websocket_over(certificate.connect(addr).await, addr).await;
    echo(&mut client, "not blocked").await;
    let mut probe = [0u8; 1];
    for (name, socket) in [("silent", &mut silent), ("half hello", &mut half_hello)] {
        let open = tokio::time::timeout(Duration::from_millis(1), socket.read(&mut probe))
            .await
            .is_err();
        assert!(
            open,
            "{name} was closed before a new client was served ({:?})",
            started.elapsed()
        );
    }

    for (name, open_for) in [
        ("silent", closed_after(&mut silent, started).await),
        ("half hello", closed_after(&mut half_hello, started).await),
        ("no head", closed_after(&mut no_head, started).await),
        ("late TLS", late.await.unwrap()),
    ] {
        assert!(
            open_for >= TIMEOUT - Duration::from_millis(50),
            "{name} closed after {open_for:?}, before the {TIMEOUT:?} timeout"
        );
        assert!(
            open_for < TIMEOUT + TIMEOUT / 3,
            "{name} closed after {open_for:?}, well after the {TIMEOUT:?} timeout"
        );
    }
    // The WebSocket, past its handshake, is not affected.
    echo(&mut client, "still here").await;
}

#[tokio::test]
async fn a_connection_whose_tls_handshake_ends_during_the_drain_gets_its_one_request() {
    let certificate = TestCertificate::new();
    let shutdown = Shutdown::new();
    let config = ServeConfig::default()
        .with_tls(certificate.tls.clone())
        .with_shutdown(shutdown.clone())
        .with_close_now_on_signal(false);
    let app = echo_app().route("/plain", axum::routing::get(|| async { "plain" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(chanmux::axum::serve(listener, app, config, async {
        let _ = stopped.await;
    }));
    // Accepted before the drain; TLS not started yet.
    let tcp = TcpStream::connect(addr).await.unwrap();
    // Let the accept loop take it in, then start the drain.
    let mut warm = certificate.connect(addr).await;
    warm.write_all(b"GET /plain HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut head = [0u8; 12];
    warm.read_exact(&mut head).await.unwrap();
    stop.send(()).unwrap();
    tokio::time::timeout(WAIT, async {
        while !shutdown.is_triggered() {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the drain starts");

    let name = ServerName::try_from("localhost").unwrap();
    let mut late = certificate.connector.connect(name, tcp).await.unwrap();
    late.write_all(b"GET /plain HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut response = Vec::new();
    let _ = tokio::time::timeout(WAIT, late.read_to_end(&mut response))
        .await
        .expect("answered, then closed");
    let response = String::from_utf8_lossy(&response).to_lowercase();
    assert!(response.starts_with("http/1.1 200"), "{response}");
    // Draining: one request, then the connection closes.
    assert!(response.contains("connection: close"), "{response}");
    assert!(response.ends_with("plain"), "{response}");
}
