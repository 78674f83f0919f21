//! Fan-out: a frame message goes from the layer straight to each member's
//! socket, without calling (or waiting for) any consumer; a full member does
//! not hold up the others; events still reach consumers that ask for them.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use chanmux::layer::{ChannelLayer, GroupName, InMemoryLayer, Message};
use chanmux::testing::Communicator;
use chanmux::{BoxError, ConnectionConfig, Consumer, Context, Demultiplexer, Text};
use serde_json::{Value, json};

use crate::support::{drain, slow_reader};

/// Joins `room` and says `"joined"`. Counts the calls of its handlers; a
/// payload `"block"` makes its handler wait until the consumer ends; an
/// event is answered `{"event": <its n>}`.
struct Member {
    calls: Arc<AtomicUsize>,
}

impl Consumer for Member {
    async fn connect(&mut self, ctx: &Context) -> Result<(), BoxError> {
        ctx.accept().await?;
        ctx.group_add("room").await?;
        ctx.send_json(&"joined").await?;
        Ok(())
    }

    async fn receive_text(&mut self, ctx: &Context, text: Text) -> Result<(), BoxError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if text.as_str() == r#""block""# {
            ctx.send_json(&"blocking").await?;
            ctx.closing().await;
        }
        Ok(())
    }

    async fn event(&mut self, ctx: &Context, message: Message) -> Result<(), BoxError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let event: Value = message.json()?;
        ctx.send_json(&json!({"event": event["n"]})).await?;
        Ok(())
    }
}

struct Room {
    demux: Demultiplexer,
    layer: InMemoryLayer,
    calls: Arc<AtomicUsize>,
}

fn room() -> Room {
    let layer = InMemoryLayer::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let demux = Demultiplexer::builder()
        .stream("room", move || Member {
            calls: counted.clone(),
        })
        .channel_layer(layer.clone())
        .build();
    Room {
        demux,
        layer,
        calls,
    }
}

/// A client with room for `frames` queued frames: the layer never waits for
/// a writer, so frames sent in a burst must fit.
fn client(room: &Room, frames: usize) -> Communicator {
    let config = ConnectionConfig::default().with_outbound_capacity(frames);
    Communicator::new(room.demux.clone(), "/").config(config)
}

async fn join(comm: &mut Communicator) {
    assert!(comm.connect().await.is_accepted());
    assert_eq!(comm.receive_from("room").await, json!("joined"));
}

fn frame(payload: &Value) -> Message {
    Message::frame("room", &payload.to_string())
}

fn group() -> GroupName {
    GroupName::new("room").unwrap()
}

#[tokio::test]
async fn a_forwarded_frame_calls_no_consumer_and_passes_one_that_is_busy() {
    let room = room();
    let mut a = Communicator::new(room.demux.clone(), "/");
    join(&mut a).await;
    // The consumer is now inside a handler that does not return: anything
    // routed through it would wait behind that call.
    a.send_to("room", &"block").await;
    assert_eq!(a.receive_from("room").await, json!("blocking"));
    let calls = room.calls.load(Ordering::SeqCst);

    for n in 0..3 {
        room.layer
            .group_send(&group(), frame(&json!({"n": n})))
            .await
            .unwrap();
    }
    for n in 0..3 {
        assert_eq!(a.receive_from("room").await, json!({"n": n}));
    }
    assert_eq!(
        room.calls.load(Ordering::SeqCst),
        calls,
        "no handler ran for the frames"
    );
}

#[tokio::test]
async fn a_consumer_that_asks_for_events_still_gets_them_beside_frames() {
    let room = room();
    let mut a = Communicator::new(room.demux.clone(), "/");
    join(&mut a).await;
    let event = Message::new(&json!({"type": "room.note", "n": 1})).unwrap();
    room.layer.group_send(&group(), event).await.unwrap();
    assert_eq!(a.receive_from("room").await, json!({"event": 1}));
    room.layer
        .group_send(&group(), frame(&json!("frame")))
        .await
        .unwrap();
    assert_eq!(a.receive_from("room").await, json!("frame"));
    assert_eq!(
        room.calls.load(Ordering::SeqCst),
        1,
        "the event was handled, the frame was not"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_member_gets_each_senders_frames_in_the_order_sent() {
    const MEMBERS: usize = 20;
    const SENDERS: usize = 3;
    const EACH: usize = 100;
    let room = room();
    let mut members = Vec::new();
    for _ in 0..MEMBERS {
        let mut comm = client(&room, SENDERS * EACH);
        join(&mut comm).await;
        members.push(comm);
    }
    // Senders run at once, on both worker threads; each sends in order.
    let senders: Vec<_> = (0..SENDERS)
        .map(|from| {
            let layer = room.layer.clone();
            tokio::spawn(async move {
                for seq in 0..EACH {
                    let payload = json!({"from": from, "seq": seq});
                    layer.group_send(&group(), frame(&payload)).await.unwrap();
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    for sender in senders {
        sender.await.unwrap();
    }
    for member in &mut members {
        let mut next = [0; SENDERS];
        for _ in 0..SENDERS * EACH {
            let got = member.receive_from("room").await;
            let from = got["from"].as_u64().unwrap() as usize;
            assert_eq!(got["seq"], next[from], "sender {from}'s frames in order");
            next[from] += 1;
        }
        assert!(member.receive_nothing().await);
    }
    assert_eq!(ChannelLayer::stats(&room.layer).dropped, 0);
}

#[tokio::test]
async fn a_member_that_does_not_read_misses_frames_without_holding_up_the_rest() {
    const FRAMES: u64 = 200;
    let room = room();
    let mut reader = client(&room, FRAMES as usize);
    join(&mut reader).await;
    // Reads nothing: its client takes one message and its outbound queue four.
    let mut stuck = slow_reader(room.demux.clone(), 4);
    join(&mut stuck).await;

    // Sent without reading anything meanwhile: every send returns at once.
    for n in 0..FRAMES {
        room.layer
            .group_send(&group(), frame(&json!(n)))
            .await
            .unwrap();
    }
    for n in 0..FRAMES {
        assert_eq!(reader.receive_from("room").await, json!(n));
    }
    let kept: Vec<Value> = drain(&mut stuck)
        .await
        .iter()
        .map(|text| serde_json::from_str::<Value>(text).unwrap()["payload"].clone())
        .collect();
    // What it got is what fit, in order, from the start; the rest is counted.
    let expected: Vec<Value> = (0..kept.len() as u64).map(|n| json!(n)).collect();
    assert_eq!(kept, expected);
    assert!(kept.len() < FRAMES as usize, "it could not hold them all");
    assert_eq!(
        ChannelLayer::stats(&room.layer).dropped,
        FRAMES - kept.len() as u64,
        "every frame it missed is counted"
    );
}
