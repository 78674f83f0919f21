//! The binary with `--tls-cert` / `--tls-key`: the `https://` address line,
//! the page over HTTPS and the streams over `wss://`, and clear errors for
//! bad certificate files.

mod support;

use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use support::*;

#[tokio::test]
async fn with_a_certificate_the_page_is_served_over_https_and_streams_over_wss() {
    let certificate = TestCertificate::new();
    let server = Server::start(&[
        "--addr",
        "127.0.0.1:0",
        "--tls-cert",
        certificate.cert.to_str().unwrap(),
        "--tls-key",
        certificate.key.to_str().unwrap(),
    ])
    .await;
    assert_eq!(server.scheme, "https");

    let mut tls = certificate.connect(&server.addr).await;
    tls.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let response = String::from_utf8(read_all(&mut tls).await).unwrap();
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(
        response.contains("<title>chanmux demo</title>"),
        "{response}"
    );

    let mut client = wss(&certificate, &server.addr, server.port(), "/ws/").await;
    send(&mut client, "echostream", json!({"hello": "world"})).await;
    assert_eq!(
        next_json(&mut client).await,
        json!({"stream": "echostream", "payload": {"hello": "world"}})
    );
}

#[tokio::test]
async fn without_a_certificate_the_address_line_says_http() {
    let server = Server::start(&["--addr", "127.0.0.1:0"]).await;
    assert_eq!(server.scheme, "http");
}

/// Runs the binary with `args`, which must make it fail; returns stderr.
async fn fails_with(args: &[&str]) -> String {
    let output = tokio::time::timeout(
        WAIT,
        Command::new(env!("CARGO_BIN_EXE_chanmux-server"))
            .args(["--addr", "127.0.0.1:0"])
            .args(args)
            .output(),
    )
    .await
    .expect("exits in time")
    .unwrap();
    assert!(!output.status.success(), "{args:?} started a server");
    assert!(output.stdout.is_empty(), "{args:?} printed an address line");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn bad_certificate_files_are_a_clear_error_and_a_non_zero_exit() {
    let certificate = TestCertificate::new();
    let other = TestCertificate::new();
    let (cert, key) = (
        certificate.cert.to_str().unwrap(),
        certificate.key.to_str().unwrap(),
    );
    let other_key = other.key.to_str().unwrap();

    let stderr = fails_with(&["--tls-cert", cert, "--tls-key", other_key]).await;
    assert!(
        stderr.contains(&format!(
            "loading TLS certificate {cert} and key {other_key}"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "the private key in {other_key} does not match the certificate in {cert}"
        )),
        "{stderr}"
    );

    let stderr = fails_with(&["--tls-cert", cert, "--tls-key", cert]).await;
    assert!(
        stderr.contains(&format!("no private key found in {cert}")),
        "{stderr}"
    );

    let missing = certificate.dir().join("missing.pem");
    let missing = missing.to_str().unwrap();
    let stderr = fails_with(&["--tls-cert", missing, "--tls-key", key]).await;
    assert!(
        stderr.contains(&format!("cannot read {missing}")),
        "{stderr}"
    );

    let stderr = fails_with(&["--tls-cert", cert]).await;
    assert!(stderr.contains("--tls-cert needs --tls-key"), "{stderr}");
}
