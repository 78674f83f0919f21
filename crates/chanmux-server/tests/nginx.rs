//! The demo server behind a real nginx that terminates TLS, configured with
//! the block operators copy from docs/deploy.md (read from the guide between
//! its markers, so the two cannot drift apart): the page, the streams and an
//! error frame over `wss://`, the Origin check and the client address across
//! the proxy, and a drain at SIGTERM reaching the client as a 1001 close.
//!
//! nginx is Debian's (`/usr/sbin/nginx`), installed by
//! `scripts/ensure-tools.sh`; without it these tests fail, saying so.

mod support;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use support::*;

/// The deployment guide, whose nginx block this test runs.
const GUIDE: &str = include_str!("../../../docs/deploy.md");

/// The nginx block of the guide, between its markers.
fn guide_nginx_block() -> &'static str {
    let begin = GUIDE
        .find("<!-- nginx.conf begin")
        .expect("docs/deploy.md has the `<!-- nginx.conf begin` marker");
    let rest = &GUIDE[begin..];
    let start = rest
        .find("```nginx\n")
        .expect("a ```nginx block after the marker")
        + 9;
    let end = rest
        .find("<!-- nginx.conf end")
        .expect("the `<!-- nginx.conf end` marker");
    let block = &rest[start..end];
    block
        .strip_suffix("```\n")
        .expect("the block closes right before the end marker")
}

/// Replaces the one line of `conf` whose text starts with `directive` by
/// `line` (None: removes it); panics when there is not exactly one, so a
/// reworded guide fails here rather than testing something else.
fn replace_line(conf: &str, directive: &str, line: Option<&str>) -> String {
    let matching = conf
        .lines()
        .filter(|l| l.trim_start().starts_with(directive))
        .count();
    assert_eq!(
        matching, 1,
        "docs/deploy.md's nginx block should have one `{directive}` line"
    );
    let mut out = String::new();
    for l in conf.lines() {
        if !l.trim_start().starts_with(directive) {
            out.push_str(l);
            out.push('\n');
        } else if let Some(line) = line {
            let indent = &l[..l.len() - l.trim_start().len()];
            out.push_str(indent);
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// nginx run from a temporary prefix, stopped when dropped (also when the
/// test panics).
struct Nginx {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Nginx {
    /// Starts nginx with the guide's block, proxying to `upstream`
    /// (`host:port`) and serving `certificate` on a free loopback port;
    /// waits until the port accepts.
    async fn start(upstream: &str, certificate: &TestCertificate) -> Nginx {
        let binary = nginx_binary();
        let dir = tempfile::tempdir().expect("a temporary directory");
        let port = free_port();
        let mut block = guide_nginx_block().to_owned();
        block = replace_line(
            &block,
            "server 127.0.0.1:8000;",
            Some(&format!("server {upstream};")),
        );
        block = replace_line(
            &block,
            "listen 443 ssl;",
            Some(&format!("listen 127.0.0.1:{port} ssl;")),
        );
        // The test has no IPv6 to count on.
        block = replace_line(&block, "listen [::]:443 ssl;", None);
        block = replace_line(
            &block,
            "ssl_certificate ",
            Some(&format!("ssl_certificate {};", certificate.cert.display())),
        );
        block = replace_line(
            &block,
            "ssl_certificate_key ",
            Some(&format!(
                "ssl_certificate_key {};",
                certificate.key.display()
            )),
        );
        std::fs::write(dir.path().join("chanmux.conf"), block).unwrap();
        std::fs::write(dir.path().join("nginx.conf"), main_conf(dir.path())).unwrap();

        let child = Command::new(&binary)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(dir.path().join("nginx.conf"))
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let mut nginx = Nginx { child, port, dir };
        nginx.wait_until_listening().await;
        nginx
    }

    async fn wait_until_listening(&mut self) {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("nginx exited ({status}) at start:\n{}", self.error_log());
            }
            if tokio::net::TcpStream::connect(self.addr()).await.is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "nginx did not listen within {WAIT:?}:\n{}",
                self.error_log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `127.0.0.1:<port>`, where nginx listens.
    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM: the master stops its workers and exits; SIGKILL if not.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// nginx's binary: Debian's, or one on PATH; failing (never skipping) with
/// the way to install it.
fn nginx_binary() -> PathBuf {
    let debian = Path::new("/usr/sbin/nginx");
    if debian.exists() {
        return debian.to_owned();
    }
    if let Ok(path) = std::env::var("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join("nginx");
            if candidate.exists() {
                return candidate;
            }
        }
    }
    panic!(
        "nginx is not installed (no /usr/sbin/nginx, none on PATH): run scripts/ensure-tools.sh"
    );
}

/// A loopback port nobody listens on right now.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// The main configuration around the guide's block: everything nginx
/// writes (pid, logs, temporary files) stays in `dir`.
fn main_conf(dir: &Path) -> String {
    use std::os::unix::fs::MetadataExt;
    // As root, nginx's workers switch to an unprivileged user that could
    // not enter the temporary directory (ours, mode 0700): keep them as
    // root. The directory's owner is whoever runs the test.
    let as_root = std::fs::metadata(dir).unwrap().uid() == 0;
    let user = if as_root { "user root;" } else { "" };
    let dir = dir.display();
    format!(
        "# Written by crates/chanmux-server/tests/nginx.rs.
{user}
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;
events {{
    worker_connections 256;
}}
http {{
    access_log {dir}/access.log;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    include {dir}/chanmux.conf;
}}
"
    )
}

/// The demo server (plain HTTP, trusting nginx's address) and nginx in
/// front of it with a new certificate.
async fn start(extra_args: &[&str]) -> (Server, Nginx, TestCertificate) {
    let mut args = vec!["--addr", "127.0.0.1:0", "--trusted-proxy", "127.0.0.1"];
    args.extend_from_slice(extra_args);
    let server = Server::start(&args).await;
    assert_eq!(server.scheme, "http");
    let certificate = TestCertificate::new();
    let nginx = Nginx::start(&server.addr, &certificate).await;
    (server, nginx, certificate)
}

#[tokio::test]
async fn through_nginx_the_page_the_streams_and_error_frames_work_over_wss() {
    let (_server, nginx, certificate) = start(&[]).await;

    let mut tls = certificate.connect(&nginx.addr()).await;
    tls.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let page = String::from_utf8(read_all(&mut tls).await).unwrap();
    assert!(page.starts_with("HTTP/1.1 200 OK\r\n"), "{page}");
    assert!(page.contains("<title>chanmux demo</title>"), "{page}");

    let mut ann = wss(&certificate, &nginx.addr(), nginx.port, "/ws/").await;
    send(&mut ann, "echostream", json!({"hello": "world"})).await;
    assert_eq!(
        next_json(&mut ann).await,
        json!({"stream": "echostream", "payload": {"hello": "world"}})
    );

    // Chat between two clients, both through nginx.
    let mut bob = wss(&certificate, &nginx.addr(), nginx.port, "/ws/").await;
    for client in [&mut ann, &mut bob] {
        send(client, "chat", json!({"join": "lobby"})).await;
        assert_eq!(
            next_json(client).await,
            json!({"stream": "chat", "payload": {"joined": "lobby"}})
        );
    }
    send(
        &mut ann,
        "chat",
        json!({"room": "lobby", "message": {"text": "hi"}}),
    )
    .await;
    for client in [&mut ann, &mut bob] {
        assert_eq!(
            next_json(client).await,
            json!({"stream": "chat", "payload": {"room": "lobby", "message": {"text": "hi"}}})
        );
    }

    // A frame naming no stream of the server gets an error frame; the
    // connection and its streams go on.
    send(&mut ann, "nope", json!(1)).await;
    let error = next_json(&mut ann).await;
    assert_eq!(error["stream"], "nope", "{error}");
    assert_eq!(error["error"]["code"], "unknown_stream", "{error}");
    assert!(error.get("payload").is_none(), "{error}");
    send(&mut ann, "echostream", json!("still here")).await;
    assert_eq!(next_json(&mut ann).await["payload"], "still here");
}

#[tokio::test]
async fn through_nginx_the_origin_is_checked_against_the_host_the_browser_sent() {
    let (_server, nginx, certificate) = start(&[]).await;
    let attempt = |origin: String| {
        let certificate = &certificate;
        let nginx = &nginx;
        async move {
            let mut request = wss_request(nginx.port, "/ws/");
            request
                .headers_mut()
                .insert("origin", origin.parse().unwrap());
            let tls = certificate.connect(&nginx.addr()).await;
            handshake_status(&try_wss(tls, request).await)
        }
    };
    // The page's own origin: nginx must pass the Host on, port included.
    assert_eq!(
        attempt(format!("https://localhost:{}", nginx.port)).await,
        101
    );
    assert_eq!(attempt("https://evil.example".to_owned()).await, 403);
}

#[tokio::test]
async fn through_nginx_x_forwarded_for_names_each_client_for_the_per_address_limit() {
    let (_server, nginx, certificate) = start(&["--max-connections-per-ip", "1"]).await;
    let from = |source: &str| {
        let source: IpAddr = source.parse().unwrap();
        let certificate = &certificate;
        let nginx = &nginx;
        async move {
            let tls = certificate.connect_from(source, &nginx.addr()).await;
            try_wss(tls, wss_request(nginx.port, "/ws/")).await
        }
    };
    // Every connection reaches the server from nginx (127.0.0.1); the
    // limit must count the clients nginx names instead.
    let first = from("127.0.0.3").await;
    assert_eq!(handshake_status(&first), 101);
    assert_eq!(handshake_status(&from("127.0.0.3").await), 429);
    assert_eq!(handshake_status(&from("127.0.0.4").await), 101);
    drop(first);
}

#[tokio::test]
async fn sigterm_drains_websockets_through_nginx_with_1001_and_the_server_exits_0() {
    let (mut server, nginx, certificate) = start(&["--drain-secs", "2"]).await;
    let mut client = wss(&certificate, &nginx.addr(), nginx.port, "/ws/").await;
    send(&mut client, "echostream", json!("before")).await;
    assert_eq!(next_json(&mut client).await["payload"], "before");

    server.terminate();
    match tokio::time::timeout(WAIT, client.next())
        .await
        .expect("a close in time")
    {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(frame.code, CloseCode::Away),
        other => panic!(
            "expected a 1001 close through nginx, got {other:?}\nnginx's log:\n{}",
            nginx.error_log()
        ),
    }
    // Reading on sends our reply to the close.
    let _ = tokio::time::timeout(WAIT, client.next()).await;
    let status = tokio::time::timeout(WAIT, server.child.wait())
        .await
        .expect("the server exits in time")
        .unwrap();
    assert!(status.success(), "the server exited with {status}");
}
