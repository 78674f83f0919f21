//! What the binary's TLS and nginx tests share: a certificate made at test
//! time (never committed) with a TLS client that trusts it, the server
//! binary started on a free port, and a `wss://` client.
#![allow(dead_code, unreachable_pub)]

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};
use tokio::process::{Child, Command};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::{Request, Response};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

/// The longest any step may take.
pub const WAIT: Duration = Duration::from_secs(20);

/// A self-signed certificate for `localhost` and its key, as PEM files in a
/// temporary directory that lives as long as this.
pub struct TestCertificate {
    dir: tempfile::TempDir,
    /// The certificate file.
    pub cert: PathBuf,
    /// The private key file.
    pub key: PathBuf,
    der: CertificateDer<'static>,
}

impl TestCertificate {
    pub fn new() -> Self {
        let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
            .expect("a certificate");
        let dir = tempfile::tempdir().expect("a temporary directory");
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&cert, made.cert.pem()).unwrap();
        std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
        TestCertificate {
            dir,
            cert,
            key,
            der: made.cert.der().clone(),
        }
    }

    /// The directory the files are in (for other files of the test).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Opens TCP to `addr` and runs a TLS handshake for `localhost`,
    /// trusting this certificate alone.
    pub async fn connect(&self, addr: &str) -> TlsStream<TcpStream> {
        let tcp = TcpStream::connect(addr).await.expect("TCP connect");
        self.handshake(tcp).await
    }

    /// As [`connect`](Self::connect), from the loopback address `source`
    /// (any of 127.0.0.0/8), so that the server sees another client.
    pub async fn connect_from(&self, source: IpAddr, addr: &str) -> TlsStream<TcpStream> {
        let socket = TcpSocket::new_v4().unwrap();
        socket
            .bind((source, 0).into())
            .expect("bind the source address");
        let tcp = socket
            .connect(addr.parse().expect("an IP address and port"))
            .await
            .expect("TCP connect");
        self.handshake(tcp).await
    }

    async fn handshake(&self, tcp: TcpStream) -> TlsStream<TcpStream> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.der.clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = ServerName::try_from("localhost").unwrap();
        tokio::time::timeout(
            WAIT,
            TlsConnector::from(Arc::new(config)).connect(name, tcp),
        )
        .await
        .expect("TLS handshake in time")
        .expect("TLS handshake")
    }
}

/// The demo server binary, killed when dropped.
pub struct Server {
    pub child: Child,
    /// The scheme of its address line: `http` or `https`.
    pub scheme: String,
    /// `host:port` from its address line.
    pub addr: String,
}

impl Server {
    /// Starts `chanmux-server` with `args` and reads its address line,
    /// `listening on <scheme>://<addr>`.
    pub async fn start(args: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_chanmux-server"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("the server starts");
        let stdout = child.stdout.take().unwrap();
        let line = tokio::time::timeout(WAIT, BufReader::new(stdout).lines().next_line())
            .await
            .expect("the address line in time")
            .unwrap()
            .expect("an address line");
        let (scheme, addr) = line
            .strip_prefix("listening on ")
            .and_then(|url| url.split_once("://"))
            .unwrap_or_else(|| panic!("unexpected first line: {line}"));
        Server {
            scheme: scheme.to_owned(),
            addr: addr.to_owned(),
            child,
        }
    }

    /// The port from its address line.
    pub fn port(&self) -> u16 {
        self.addr.rsplit_once(':').unwrap().1.parse().unwrap()
    }

    /// Sends it SIGTERM, as a supervisor stopping it would.
    pub fn terminate(&self) {
        let pid = self.child.id().expect("still running").to_string();
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -TERM {pid}");
    }
}

/// A `wss://` client.
pub type Wss = WebSocketStream<TlsStream<TcpStream>>;

/// The request for `wss://localhost:<port><path>`, to add headers to.
pub fn wss_request(port: u16, path: &str) -> Request {
    format!("wss://localhost:{port}{path}")
        .into_client_request()
        .unwrap()
}

/// A WebSocket handshake over `tls`: the socket and the 101, or the error
/// (`WsError::Http` holds a refusal's response).
pub async fn try_wss(
    tls: TlsStream<TcpStream>,
    request: Request,
) -> Result<(Wss, Response), WsError> {
    tokio::time::timeout(WAIT, tokio_tungstenite::client_async(request, tls))
        .await
        .expect("WebSocket handshake answered in time")
}

/// The HTTP status a WebSocket handshake got: 101, or the refusal's.
pub fn handshake_status(result: &Result<(Wss, Response), WsError>) -> u16 {
    match result {
        Ok((_, response)) => response.status().as_u16(),
        Err(WsError::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("WebSocket handshake failed: {other}"),
    }
}

/// Opens `wss://localhost:<port><path>` over TLS to `addr`.
pub async fn wss(certificate: &TestCertificate, addr: &str, port: u16, path: &str) -> Wss {
    let tls = certificate.connect(addr).await;
    let (client, response) = try_wss(tls, wss_request(port, path))
        .await
        .expect("WebSocket handshake");
    assert_eq!(response.status(), 101);
    client
}

/// Sends one frame, `{"stream": stream, "payload": payload}`.
pub async fn send(client: &mut Wss, stream: &str, payload: Value) {
    let frame = serde_json::json!({"stream": stream, "payload": payload}).to_string();
    client.send(Message::text(frame)).await.expect("send");
}

/// The next message, which must be a JSON text frame.
pub async fn next_json(client: &mut Wss) -> Value {
    match tokio::time::timeout(WAIT, client.next())
        .await
        .expect("a message in time")
    {
        Some(Ok(Message::Text(text))) => serde_json::from_str(&text).expect("JSON"),
        other => panic!("expected a text frame, got {other:?}"),
    }
}

/// Reads until the peer closes (with or without TLS's close_notify).
pub async fn read_all(stream: &mut (impl AsyncReadExt + Unpin)) -> Vec<u8> {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match tokio::time::timeout(WAIT, stream.read(&mut buffer))
            .await
            .expect("the response in time")
        {
            Ok(0) | Err(_) => return received,
            Ok(n) => received.extend_from_slice(&buffer[..n]),
        }
    }
}
