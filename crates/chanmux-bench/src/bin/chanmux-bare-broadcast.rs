//! `chanmux-bare-broadcast`: the fan-out ceiling. The demo's `chat` wire
//! shape on the same stack as `chanmux-bare-echo` (axum, tungstenite, the
//! same buffer settings), with the simplest fast design and nothing else:
//! rooms in one locked map, each broadcast serialised once and shared by
//! every member (a refcount bump each), one writer task per connection.
//!
//! - `{"stream":"chat","payload":{"join":ROOM}}` joins and is answered
//!   `{"stream":"chat","payload":{"joined":ROOM}}`;
//! - `{"stream":"chat","payload":{"room":ROOM,"message":M}}` sends
//!   `{"stream":"chat","payload":{"room":ROOM,"message":M}}` to every member
//!   of ROOM (the sender too, if it joined).
//!
//! Anything else is ignored. Members leave their rooms when they disconnect.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use chanmux_bench::ceiling;
use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::sync::mpsc;

/// Plain WebSocket chat-room broadcaster (any path).
#[derive(Debug, Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8002")]
    addr: SocketAddr,
}

/// Room name → (connection id, its queue). A plain mutex: it is held only
/// to copy handles or push into non-blocking queues, never across an await.
type Rooms = Arc<Mutex<HashMap<String, Vec<(u64, mpsc::Sender<Utf8Bytes>)>>>>;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let rooms = Rooms::default();
    let ids = Arc::new(AtomicU64::new(0));
    let app = Router::new().fallback(move |ws: WebSocketUpgrade| {
        let rooms = rooms.clone();
        let id = ids.fetch_add(1, Ordering::Relaxed);
        async move {
            ceiling::configure(ws, ceiling::default_read_buffer())
                .on_upgrade(move |socket| connection(socket, id, rooms))
        }
    });
    ceiling::serve(args.addr, app).await
}

#[derive(Deserialize)]
struct Frame<'a> {
    #[serde(borrow)]
    stream: &'a RawValue,
    #[serde(borrow)]
    payload: Payload<'a>,
}

#[derive(Deserialize)]
struct Payload<'a> {
    join: Option<String>,
    room: Option<String>,
    #[serde(borrow)]
    message: Option<&'a RawValue>,
}

/// Reads one connection's frames; its writer runs beside it.
async fn connection(socket: WebSocket, id: u64, rooms: Rooms) {
    let (sink, mut stream) = socket.split();
    // chanmux's outbound queue: like chanmux, a group message for a member
    // whose queue is full is dropped rather than waited for.
    let (queue, queued) = mpsc::channel(ceiling::outbound_capacity());
    let writer = tokio::spawn(write(sink, queued));
    let mut joined = Vec::new();
    while let Some(Ok(message)) = stream.next().await {
        let Message::Text(text) = message else {
            if matches!(message, Message::Close(_)) {
                break;
            }
            continue;
        };
        let Ok(frame) = serde_json::from_str::<Frame<'_>>(text.as_str()) else {
            continue;
        };
        if frame.stream.get() != r#""chat""# {
            continue;
        }
        if let Some(room) = frame.payload.join {
            let reply = format!(
                r#"{{"stream":"chat","payload":{{"joined":{}}}}}"#,
                serde_json::Value::String(room.clone())
            );
            if !joined.contains(&room) {
                let mut map = rooms.lock().expect("rooms lock");
                map.entry(room.clone())
                    .or_default()
                    .push((id, queue.clone()));
                joined.push(room);
            }
            // The join's answer is never dropped: wait for room in the queue.
            if queue.send(Utf8Bytes::from(reply)).await.is_err() {
                break;
            }
        } else if let (Some(room), Some(said)) = (frame.payload.room, frame.payload.message) {
            // Serialised once; every member's copy shares these bytes.
            let out = Utf8Bytes::from(format!(
                r#"{{"stream":"chat","payload":{{"room":{},"message":{}}}}}"#,
                serde_json::Value::String(room.clone()),
                said.get()
            ));
            let map = rooms.lock().expect("rooms lock");
            for (_, member) in map.get(&room).into_iter().flatten() {
                // A full queue drops the message for that member only.
                let _ = member.try_send(out.clone());
            }
        }
    }
    leave(&rooms, id, &joined);
    // The rooms held the last other handles: the writer ends once it has
    // written what is queued.
    drop(queue);
    let _ = writer.await;
}

/// Takes connection `id` out of the rooms it joined; empty rooms go.
fn leave(rooms: &Rooms, id: u64, joined: &[String]) {
    let mut map = rooms.lock().expect("rooms lock");
    for room in joined {
        if let Some(members) = map.get_mut(room) {
            members.retain(|(member, _)| *member != id);
            if members.is_empty() {
                map.remove(room);
            }
        }
    }
}

/// Writes everything already queued, then flushes once: the same syscalls
/// per message as chanmux's writer and `chanmux-bare-echo`.
async fn write(
    mut sink: futures_util::stream::SplitSink<WebSocket, Message>,
    mut queued: mpsc::Receiver<Utf8Bytes>,
) {
    while let Some(first) = queued.recv().await {
        if sink.feed(Message::Text(first)).await.is_err() {
            return;
        }
        while let Ok(next) = queued.try_recv() {
            if sink.feed(Message::Text(next)).await.is_err() {
                return;
            }
        }
        if sink.flush().await.is_err() {
            return;
        }
    }
}
