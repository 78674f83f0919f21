//! The load generator's reply checks catch a faulty server: a wrong stream
//! tag, a wrong payload and a reordered reply, each from a deliberately
//! broken in-process echo server.

use std::time::Duration;

use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use chanmux_bench::echo::{EchoConfig, run};
use futures_util::{SinkExt, StreamExt};

#[derive(Clone, Copy)]
enum Fault {
    None,
    WrongStream,
    WrongPayload,
    Reorder,
}

/// An echo of `{"stream", "payload"}` frames that breaks every 10th reply.
async fn faulty_echo(socket: WebSocket, fault: Fault) {
    let (mut sink, mut stream) = socket.split();
    let mut n = 0u64;
    let mut held: Option<Message> = None;
    while let Some(Ok(Message::Text(text))) = stream.next().await {
        n += 1;
        let text = text.as_str().to_owned();
        let broken = n.is_multiple_of(10);
        let reply = match fault {
            Fault::WrongStream if broken => text.replacen("echostream", "otherstream", 1),
            Fault::WrongPayload if broken => text.replacen(r#""seq":"#, r#""seq":1"#, 1),
            Fault::Reorder if broken => {
                // Hold this one back and send it after the next.
                held = Some(Message::text(text));
                continue;
            }
            _ => text,
        };
        if sink.send(Message::text(reply)).await.is_err() {
            return;
        }
        if let Some(late) = held.take()
            && sink.send(late).await.is_err()
        {
            return;
        }
    }
}

async fn serve(fault: Fault) -> String {
    let app = Router::new().fallback(move |ws: WebSocketUpgrade| async move {
        ws.on_upgrade(move |s| faulty_echo(s, fault))
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("ws://{addr}/ws/")
}

fn config(url: String) -> EchoConfig {
    EchoConfig {
        url,
        connections: 2,
        // Two in flight, so a held-back reply can be overtaken.
        in_flight: 2,
        streams: vec!["echostream".into()],
        payload_size: 64,
        duration: Duration::from_millis(300),
        warmup: Duration::ZERO,
        multiplexed: true,
        progress: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_correct_server_gives_a_clean_run() {
    let summary = run(&config(serve(Fault::None).await)).await.unwrap();
    assert!(summary.messages > 0);
    assert!(summary.is_clean(), "{summary:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_stream_tag_is_caught() {
    let summary = run(&config(serve(Fault::WrongStream).await)).await.unwrap();
    assert!(summary.wrong_stream > 0, "{summary:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_payload_is_caught() {
    let summary = run(&config(serve(Fault::WrongPayload).await))
        .await
        .unwrap();
    assert!(summary.wrong_payload > 0, "{summary:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reordered_reply_is_caught() {
    let summary = run(&config(serve(Fault::Reorder).await)).await.unwrap();
    assert!(summary.reordered > 0, "{summary:?}");
    assert_eq!(
        summary.wrong_stream + summary.wrong_payload,
        0,
        "{summary:?}"
    );
}

#[tokio::test]
async fn a_refused_connection_is_explained() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let error = run(&config(format!("ws://{addr}/ws/"))).await.unwrap_err();
    assert!(format!("{error:#}").contains("refused"), "{error:#}");
}
