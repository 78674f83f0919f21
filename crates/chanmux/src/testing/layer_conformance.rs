//! The behaviour every [`ChannelLayer`](crate::layer::ChannelLayer) must have, as one suite that each
//! backend runs: `run_all(|| async { (layer_a, layer_b) }).await`.
//!
//! The two layers of a pair must share one backend (two clones of an
//! [`InMemoryLayer`](crate::layer::InMemoryLayer), or two Redis layers on one
//! server): that is how the suite checks delivery across processes.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tokio::sync::mpsc;

use crate::layer::{ChannelName, Deliver, GroupName, Message, SharedLayer};

/// How long a check waits for a message that must arrive.
const ARRIVAL: Duration = Duration::from_secs(5);

/// Runs every check with fresh layer pairs from `make_pair`.
///
/// # Panics
///
/// When a check fails, with a message naming it.
pub async fn run_all<F, Fut>(make_pair: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = (SharedLayer, SharedLayer)>,
{
    send_reaches_the_channel(make_pair().await).await;
    group_send_reaches_members_only(make_pair().await).await;
    discard_stops_delivery(make_pair().await).await;
    sending_to_an_empty_group_is_fine(make_pair().await).await;
    order_from_one_sender_is_kept(make_pair().await).await;
    delivery_crosses_layer_instances(make_pair().await).await;
    closing_a_channel_leaves_its_groups(make_pair().await).await;
    a_full_channel_drops_and_counts(make_pair().await).await;
    frame_messages_arrive_intact(make_pair().await).await;
}

/// A channel's receiving end in tests.
struct Mailbox {
    rx: mpsc::Receiver<Message>,
    name: ChannelName,
}

struct Queue(mpsc::Sender<Message>);

impl Deliver for Queue {
    fn deliver(&self, message: &Message) -> bool {
        self.0.try_send(message.clone()).is_ok()
    }
}

fn mailbox(layer: &SharedLayer, capacity: usize) -> Mailbox {
    let (tx, rx) = mpsc::channel(capacity);
    let name = layer.new_channel(Arc::new(Queue(tx)));
    Mailbox { rx, name }
}

fn event(n: u64) -> Message {
    Message::new(&json!({"type": "test.event", "n": n})).expect("a valid message")
}

fn group(name: &str) -> GroupName {
    // Unique per run, so suites sharing a backend do not see each other.
    static RUN: Mutex<u64> = Mutex::new(0);
    let mut run = RUN.lock().expect("not poisoned");
    *run += 1;
    GroupName::new(&format!(
        "conformance.{}.{name}.{}",
        std::process::id(),
        *run
    ))
    .expect("valid")
}

impl Mailbox {
    async fn expect(&mut self, check: &str) -> Message {
        match tokio::time::timeout(ARRIVAL, self.rx.recv()).await {
            Ok(Some(message)) => message,
            _ => panic!("{check}: a message did not arrive"),
        }
    }

    async fn expect_n(&mut self, check: &str, n: u64) {
        let message = self.expect(check).await;
        let value: serde_json::Value = message.json().expect("JSON");
        assert_eq!(value["n"], n, "{check}: wrong message");
    }

    fn expect_empty(&mut self, check: &str) {
        assert!(
            self.rx.try_recv().is_err(),
            "{check}: an unexpected message arrived"
        );
    }
}

async fn send_reaches_the_channel((a, b): (SharedLayer, SharedLayer)) {
    let mut inbox = mailbox(&a, 8);
    a.send(&inbox.name, event(1)).await.expect("send");
    inbox.expect_n("send_reaches_the_channel", 1).await;
    drop(b);
}

async fn group_send_reaches_members_only((a, _b): (SharedLayer, SharedLayer)) {
    let g = group("members");
    let mut member = mailbox(&a, 8);
    let mut outsider = mailbox(&a, 8);
    a.group_add(&g, &member.name).await.expect("group_add");
    a.group_send(&g, event(1)).await.expect("group_send");
    member.expect_n("group_send_reaches_members_only", 1).await;
    // A direct send after the group send arrives after it: a barrier.
    a.send(&outsider.name, event(2)).await.expect("send");
    outsider
        .expect_n("group_send_reaches_members_only (barrier)", 2)
        .await;
    outsider.expect_empty("group_send_reaches_members_only");
}

async fn discard_stops_delivery((a, _b): (SharedLayer, SharedLayer)) {
    let g = group("discard");
    let mut member = mailbox(&a, 8);
    a.group_add(&g, &member.name).await.expect("group_add");
    a.group_discard(&g, &member.name)
        .await
        .expect("group_discard");
    a.group_discard(&g, &member.name)
        .await
        .expect("discarding twice is fine");
    a.group_send(&g, event(1)).await.expect("group_send");
    a.send(&member.name, event(2)).await.expect("send");
    member.expect_n("discard_stops_delivery", 2).await;
    member.expect_empty("discard_stops_delivery");
}

async fn sending_to_an_empty_group_is_fine((a, _b): (SharedLayer, SharedLayer)) {
    a.group_send(&group("empty"), event(1))
        .await
        .expect("an empty group is not an error");
}

async fn order_from_one_sender_is_kept((a, b): (SharedLayer, SharedLayer)) {
    let g = group("order");
    let mut member = mailbox(&a, 256);
    a.group_add(&g, &member.name).await.expect("group_add");
    for n in 0..200 {
        b.group_send(&g, event(n)).await.expect("group_send");
    }
    for n in 0..200 {
        member.expect_n("order_from_one_sender_is_kept", n).await;
    }
}

async fn delivery_crosses_layer_instances((a, b): (SharedLayer, SharedLayer)) {
    let g = group("cross");
    let mut on_a = mailbox(&a, 8);
    let mut on_b = mailbox(&b, 8);
    a.group_add(&g, &on_a.name).await.expect("group_add on a");
    b.group_add(&g, &on_b.name).await.expect("group_add on b");
    b.group_send(&g, event(1)).await.expect("group_send from b");
    on_a.expect_n("delivery_crosses_layer_instances (group, a)", 1)
        .await;
    on_b.expect_n("delivery_crosses_layer_instances (group, b)", 1)
        .await;
    b.send(&on_a.name, event(2))
        .await
        .expect("send from b to a");
    on_a.expect_n("delivery_crosses_layer_instances (send)", 2)
        .await;
}

async fn closing_a_channel_leaves_its_groups((a, _b): (SharedLayer, SharedLayer)) {
    let before = a.stats();
    let inbox = mailbox(&a, 8);
    for name in ["one", "two"] {
        a.group_add(&group(name), &inbox.name)
            .await
            .expect("group_add");
    }
    let during = a.stats();
    assert_eq!(
        during.channels,
        before.channels + 1,
        "closing_a_channel_leaves_its_groups: channels"
    );
    assert_eq!(
        during.memberships,
        before.memberships + 2,
        "closing_a_channel_leaves_its_groups: memberships"
    );
    a.close_channel(&inbox.name);
    let after = a.stats();
    assert_eq!(
        (after.channels, after.groups, after.memberships),
        (before.channels, before.groups, before.memberships),
        "closing_a_channel_leaves_its_groups: nothing left"
    );
}

async fn a_full_channel_drops_and_counts((a, _b): (SharedLayer, SharedLayer)) {
    let g = group("full");
    let mut inbox = mailbox(&a, 2);
    a.group_add(&g, &inbox.name).await.expect("group_add");
    let dropped_before = a.stats().dropped;
    for n in 0..5 {
        a.group_send(&g, event(n))
            .await
            .expect("a full channel is not the sender's error");
    }
    // Nothing is read meanwhile: two fit, three are dropped and counted.
    let counted = tokio::time::timeout(ARRIVAL, async {
        while a.stats().dropped < dropped_before + 3 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(
        counted.is_ok(),
        "a_full_channel_drops_and_counts: drops not counted"
    );
    inbox.expect_n("a_full_channel_drops_and_counts", 0).await;
    inbox.expect_n("a_full_channel_drops_and_counts", 1).await;
    inbox.expect_empty("a_full_channel_drops_and_counts");
}

async fn frame_messages_arrive_intact((a, b): (SharedLayer, SharedLayer)) {
    let g = group("frames");
    let mut inbox = mailbox(&a, 8);
    a.group_add(&g, &inbox.name).await.expect("group_add");
    let payload = r#"{"room": "r", "message": [1e3, "é", 123456789012345678901234567890]}"#;
    b.group_send(&g, Message::frame("chat", payload))
        .await
        .expect("group_send");
    let message = inbox.expect("frame_messages_arrive_intact").await;
    assert_eq!(
        message.frame_text(),
        Some(format!(r#"{{"stream":"chat","payload":{payload}}}"#).as_str()),
        "frame_messages_arrive_intact"
    );
}
