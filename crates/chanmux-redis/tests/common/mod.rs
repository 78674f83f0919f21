//! Helpers shared by the Redis layer's integration tests: a local channel
//! whose messages land in a queue, numbered events, and bounded waits for
//! one of them.
#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chanmux::layer::{ChannelLayer, ChannelName, Deliver, Message};
use serde_json::json;
use tokio::sync::mpsc;

/// How long any one thing may take before a test fails.
pub const WAIT: Duration = Duration::from_secs(30);

struct Queue(mpsc::Sender<Message>);

impl Deliver for Queue {
    fn deliver(&self, message: &Message) -> bool {
        self.0.try_send(message.clone()).is_ok()
    }
}

/// A new channel on `layer` and the queue its messages land in.
pub fn mailbox(layer: &dyn ChannelLayer) -> (ChannelName, mpsc::Receiver<Message>) {
    let (tx, rx) = mpsc::channel(64);
    (layer.new_channel(Arc::new(Queue(tx))), rx)
}

/// Event number `n`.
pub fn event(n: u64) -> Message {
    Message::new(&json!({"type": "test", "n": n})).unwrap()
}

fn number(message: &Message) -> serde_json::Value {
    message.json::<serde_json::Value>().unwrap()["n"].clone()
}

/// Waits for event `n`, skipping others (earlier retries).
pub async fn receive(inbox: &mut mpsc::Receiver<Message>, n: u64) -> Message {
    tokio::time::timeout(WAIT, async {
        loop {
            let message = inbox.recv().await.expect("open");
            if number(&message) == n {
                return message;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("message {n} did not arrive"))
}

/// Sends with `send` until event `n` arrives, skipping others (earlier
/// events still queued): messages sent while Redis is away or a shard fails
/// over are lost (at most once), and sends may fail meanwhile.
pub async fn send_until_received<F, Fut>(send: F, inbox: &mut mpsc::Receiver<Message>, n: u64)
where
    F: Fn() -> Fut,
    Fut: Future,
{
    tokio::time::timeout(WAIT, async {
        loop {
            let _ = send().await;
            let arrived = tokio::time::timeout(Duration::from_millis(200), async {
                while let Some(message) = inbox.recv().await {
                    if number(&message) == n {
                        return true;
                    }
                }
                false
            });
            if let Ok(true) = arrived.await {
                return;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("message {n} did not reach its recipient again"));
}
