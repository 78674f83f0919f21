//! `chanmux-bare-echo`: the ceiling. A WebSocket echo on the same stack
//! (axum, tungstenite) with the same buffer settings as chanmux's defaults,
//! and no multiplexing: every text frame goes straight back.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use chanmux_bench::ceiling;
use clap::Parser;
use futures_util::{FutureExt, SinkExt, StreamExt};

/// Plain WebSocket echo server (any path).
#[derive(Debug, Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8001")]
    addr: SocketAddr,
    /// Initial read buffer per connection, in bytes (chanmux's default: 1 KiB).
    #[arg(long, default_value_t = ceiling::default_read_buffer())]
    read_buffer: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let read_buffer = args.read_buffer;
    let app = Router::new().fallback(move |ws: WebSocketUpgrade| async move {
        ceiling::configure(ws, read_buffer).on_upgrade(echo)
    });
    ceiling::serve(args.addr, app).await
}

/// Echoes every message; like chanmux's writer, it writes what is already
/// waiting before one flush, so both pay the same syscalls per message.
async fn echo(socket: WebSocket) {
    let (mut sink, mut stream) = socket.split();
    let mut next = stream.next().await;
    while let Some(Ok(message)) = next {
        if matches!(message, Message::Close(_)) {
            return;
        }
        let is_data = matches!(message, Message::Text(_) | Message::Binary(_));
        if is_data && sink.feed(message).await.is_err() {
            return;
        }
        next = match stream.next().now_or_never() {
            Some(ready) => ready,
            None => {
                if sink.flush().await.is_err() {
                    return;
                }
                stream.next().await
            }
        };
    }
}
