//! Consumers in groups, through the communicator.

use chanmux::layer::{ChannelName, GroupName, InMemoryLayer, LayerStats, Message};
use chanmux::testing::Communicator;
use chanmux::{BoxError, Consumer, Context, Demultiplexer, GroupError, Text};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::support::*;

/// Joins group `room` on connect, tells the client its channel name, and
/// relays layer events to the client; `{"leave": true}` leaves the room,
/// any other payload is sent to the room as a `room.message` event.
struct Member;

/// The events a member understands, dispatched by their `type`.
#[derive(Deserialize)]
#[serde(tag = "type")]
enum RoomEvent {
    #[serde(rename = "room.message")]
    Message { text: Value },
    #[serde(rename = "room.ping")]
    Ping,
}

impl Consumer for Member {
    async fn connect(&mut self, ctx: &Context) -> Result<(), BoxError> {
        ctx.accept().await?;
        ctx.group_add("room").await?;
        let channel = ctx.channel_name().map(ChannelName::as_str);
        ctx.send_json(&json!({"channel": channel})).await?;
        Ok(())
    }

    async fn receive_text(&mut self, ctx: &Context, text: Text) -> Result<(), BoxError> {
        if text.value()? == json!({"leave": true}) {
            ctx.group_discard("room").await?;
            ctx.send_json(&json!({"left": "room"})).await?;
            return Ok(());
        }
        let layer = ctx.layer().expect("a layer is configured");
        let event = Message::new(&json!({"type": "room.message", "text": text.value()?}))?;
        layer.group_send(&GroupName::new("room")?, event).await?;
        Ok(())
    }

    async fn event(&mut self, ctx: &Context, message: Message) -> Result<(), BoxError> {
        match message.json::<RoomEvent>()? {
            RoomEvent::Message { text } => ctx.send_json(&json!({"heard": text})).await?,
            RoomEvent::Ping => ctx.send_json(&json!({"pong": true})).await?,
        }
        Ok(())
    }
}

fn setup() -> (Demultiplexer, InMemoryLayer) {
    let layer = InMemoryLayer::new();
    let demux = Demultiplexer::builder()
        .stream("room", || Member)
        .stream("echo", || Echo)
        .channel_layer(layer.clone())
        .build();
    (demux, layer)
}

async fn join(demux: &Demultiplexer) -> (Communicator, String) {
    let mut comm = Communicator::new(demux.clone(), "/");
    assert!(comm.connect().await.is_accepted());
    let hello = comm.receive_json_from().await;
    let channel = hello["payload"]["channel"]
        .as_str()
        .expect("a channel name")
        .to_owned();
    (comm, channel)
}

#[tokio::test]
async fn each_consumer_has_a_unique_channel_and_group_messages_reach_every_member() {
    let (demux, _layer) = setup();
    let (mut a, channel_a) = join(&demux).await;
    let (mut b, channel_b) = join(&demux).await;
    assert_ne!(channel_a, channel_b);

    a.send_json_to(&json!({"stream": "room", "payload": "hi all"}))
        .await;
    for client in [&mut a, &mut b] {
        assert_eq!(
            client.receive_json_from().await,
            json!({"stream": "room", "payload": {"heard": "hi all"}})
        );
    }
}

#[tokio::test]
async fn anyone_holding_the_layer_can_send_to_a_channel_or_a_group() {
    let (demux, layer) = setup();
    let (mut a, channel_a) = join(&demux).await;
    let (mut b, _) = join(&demux).await;

    // From outside any connection (an HTTP handler, a background task).
    let ping = Message::new(&json!({"type": "room.ping"})).unwrap();
    use chanmux::layer::ChannelLayer as _;
    layer
        .send(&ChannelName::new(&channel_a).unwrap(), ping.clone())
        .await
        .unwrap();
    assert_eq!(
        a.receive_json_from().await,
        json!({"stream": "room", "payload": {"pong": true}})
    );
    assert!(b.receive_nothing().await, "only the addressed channel");

    layer
        .group_send(&GroupName::new("room").unwrap(), ping)
        .await
        .unwrap();
    for client in [&mut a, &mut b] {
        assert_eq!(
            client.receive_json_from().await,
            json!({"stream": "room", "payload": {"pong": true}})
        );
    }
}

#[tokio::test]
async fn discarding_a_group_stops_its_messages() {
    let (demux, _layer) = setup();
    let (mut a, _) = join(&demux).await;
    let (mut b, _) = join(&demux).await;
    b.send_json_to(&json!({"stream": "room", "payload": {"leave": true}}))
        .await;
    assert_eq!(
        b.receive_json_from().await,
        json!({"stream": "room", "payload": {"left": "room"}})
    );

    a.send_json_to(&json!({"stream": "room", "payload": 1}))
        .await;
    assert_eq!(
        a.receive_json_from().await,
        json!({"stream": "room", "payload": {"heard": 1}})
    );
    assert!(b.receive_nothing().await);
}

#[tokio::test]
async fn a_demultiplexer_broadcast_goes_straight_to_clients_byte_for_byte() {
    let (demux, layer) = setup();
    let (mut a, _) = join(&demux).await;
    let (mut b, _) = join(&demux).await;
    // On the same layer, with a channel, but in no group.
    let outsider_demux = Demultiplexer::builder()
        .stream("echo", || Echo)
        .channel_layer(layer.clone())
        .build();
    let mut outsider = Communicator::new(outsider_demux, "/");
    assert!(outsider.connect().await.is_accepted());

    let payload = r#"{"news": [1e3, "é", 123456789012345678901234567890]}"#;
    demux
        .group_send_raw("room", "announcements", payload)
        .await
        .unwrap();
    let frame = format!(r#"{{"stream":"announcements","payload":{payload}}}"#);
    for client in [&mut a, &mut b] {
        assert_eq!(client.receive_text_from().await, frame);
    }
    assert!(outsider.receive_nothing().await);

    demux
        .group_send("room", "announcements", &json!({"n": 2}))
        .await
        .unwrap();
    assert_eq!(
        a.receive_json_from().await,
        json!({"stream": "announcements", "payload": {"n": 2}})
    );
}

#[tokio::test]
async fn bad_group_names_and_missing_layers_are_clear_errors() {
    let (demux, _layer) = setup();
    assert!(matches!(
        demux.group_send("no spaces", "s", &1).await,
        Err(GroupError::Name(_))
    ));
    assert!(matches!(
        demux.group_send_raw("ok", "s", "not json").await,
        Err(GroupError::Message(_))
    ));
    let without = Demultiplexer::builder().stream("echo", || Echo).build();
    assert!(matches!(
        without.group_send("ok", "s", &1).await,
        Err(GroupError::NoLayer)
    ));

    struct JoinsBadGroup;
    impl Consumer for JoinsBadGroup {
        async fn connect(&mut self, ctx: &Context) -> Result<(), BoxError> {
            ctx.accept().await?;
            let error = ctx.group_add("bad/name").await.unwrap_err();
            ctx.send_json(&error.to_string()).await?;
            Ok(())
        }
    }
    let demux = Demultiplexer::builder()
        .stream("s", || JoinsBadGroup)
        .channel_layer(InMemoryLayer::new())
        .build();
    let mut comm = Communicator::new(demux, "/");
    assert!(comm.connect().await.is_accepted());
    let reply = comm.receive_json_from().await;
    assert!(
        reply["payload"].as_str().unwrap().contains("bad/name"),
        "{reply}"
    );
}

/// Joins `room`, then panics on its first message.
struct JoinsThenPanics;

impl Consumer for JoinsThenPanics {
    async fn connect(&mut self, ctx: &Context) -> Result<(), BoxError> {
        ctx.accept().await?;
        ctx.group_add("room").await?;
        ctx.group_add("other").await?;
        ctx.send_json(&"joined").await?;
        Ok(())
    }
    async fn receive_text(&mut self, _ctx: &Context, _text: Text) -> Result<(), BoxError> {
        panic!("boom")
    }
}

#[tokio::test]
async fn membership_ends_with_the_consumer_even_after_a_panic() {
    let layer = InMemoryLayer::new();
    let demux = Demultiplexer::builder()
        .stream("p", || JoinsThenPanics)
        .stream("m", || Member)
        .stream("echo", || Echo)
        .channel_layer(layer.clone())
        .build();
    let stats = |layer: &InMemoryLayer| {
        let s = chanmux::layer::ChannelLayer::stats(layer);
        (s.channels, s.groups, s.memberships)
    };
    let mut comm = Communicator::new(demux, "/");
    assert!(comm.connect().await.is_accepted());
    comm.receive_json_from().await;
    comm.receive_json_from().await;
    assert_eq!(
        stats(&layer),
        (2, 2, 3),
        "p joined room and other, m joined room; echo never asked for a channel"
    );

    comm.send_json_to(&json!({"stream": "p", "payload": 0}))
        .await;
    comm.send_json_to(&json!({"stream": "echo", "payload": 1}))
        .await;
    comm.receive_json_from().await;
    assert_eq!(
        stats(&layer),
        (1, 1, 1),
        "the panicked stream left its groups; m is still in room"
    );

    comm.disconnect(1000).await;
    assert_eq!(stats(&layer), (0, 0, 0));
}

#[tokio::test]
async fn a_channel_is_opened_on_first_use_and_keeps_its_name() {
    struct Asks;
    impl Consumer for Asks {
        async fn receive_text(&mut self, ctx: &Context, _text: Text) -> Result<(), BoxError> {
            let first = ctx.channel_name().cloned();
            let again = ctx.channel_name().cloned();
            assert_eq!(first, again);
            ctx.send_json(&first.map(|c| c.as_str().to_owned())).await?;
            Ok(())
        }
        async fn event(&mut self, ctx: &Context, message: Message) -> Result<(), BoxError> {
            ctx.send_json(&json!({"event": message.message_type()}))
                .await?;
            Ok(())
        }
    }
    let layer = InMemoryLayer::new();
    let demux = Demultiplexer::builder()
        .stream("s", || Asks)
        .channel_layer(layer.clone())
        .build();
    let channels = |layer: &InMemoryLayer| chanmux::layer::ChannelLayer::stats(layer).channels;
    let mut comm = Communicator::new(demux, "/");
    assert!(comm.connect().await.is_accepted());
    assert_eq!(channels(&layer), 0, "no channel before it is asked for");
    comm.send_json_to(&json!({"stream": "s", "payload": 0}))
        .await;
    let reply = comm.receive_json_from().await;
    let name = reply["payload"]
        .as_str()
        .expect("a channel name")
        .to_owned();
    assert_eq!(channels(&layer), 1);
    // Its name reaches it: a direct send to that channel is delivered.
    let message = Message::new(&json!({"type": "x"})).unwrap();
    chanmux::layer::ChannelLayer::send(&layer, &ChannelName::new(&name).unwrap(), message)
        .await
        .unwrap();
    assert_eq!(
        comm.receive_json_from().await,
        json!({"stream": "s", "payload": {"event": "x"}})
    );
    comm.disconnect(1000).await;
    assert_eq!(channels(&layer), 0, "closed with the consumer");
}

#[tokio::test]
async fn ten_thousand_clients_joining_groups_leave_nothing_behind() {
    let layer = InMemoryLayer::new();
    let demux = Demultiplexer::builder()
        .stream("room", || Member)
        .channel_layer(layer.clone())
        .build();
    let mut open = Vec::new();
    for i in 0..10_000 {
        let mut comm = Communicator::new(demux.clone(), "/");
        assert!(comm.connect().await.is_accepted());
        comm.receive_json_from().await;
        open.push(comm);
        // Keep a few hundred open at once; close the oldest, some abruptly.
        if open.len() == 200 {
            let during = chanmux::layer::ChannelLayer::stats(&layer);
            assert_eq!(
                (during.channels, during.groups, during.memberships),
                (200, 1, 200)
            );
            for (j, mut comm) in open.drain(..).enumerate() {
                if (i + j) % 3 == 0 {
                    comm.abort().await;
                } else {
                    comm.disconnect(1000).await;
                }
            }
        }
    }
    assert_eq!(
        chanmux::layer::ChannelLayer::stats(&layer),
        LayerStats::new(0, 0, 0, 0)
    );
}

#[tokio::test]
async fn consumers_without_a_layer_get_no_channel() {
    struct Reports;
    impl Consumer for Reports {
        async fn connect(&mut self, ctx: &Context) -> Result<(), BoxError> {
            ctx.accept().await?;
            let joined = ctx.group_add("room").await;
            ctx.send_json(
                &json!({"channel": ctx.channel_name().is_some(), "join": format!("{joined:?}")}),
            )
            .await?;
            Ok(())
        }
    }
    let demux = Demultiplexer::builder().stream("s", || Reports).build();
    let mut comm = Communicator::new(demux, "/");
    assert!(comm.connect().await.is_accepted());
    assert_eq!(
        comm.receive_json_from().await,
        json!({"stream": "s", "payload": {"channel": false, "join": "Err(NoLayer)"}})
    );
}

/// Joins `room` in connect but never accepts.
struct JoinsWithoutAccepting;

impl Consumer for JoinsWithoutAccepting {
    async fn connect(&mut self, ctx: &Context) -> Result<(), BoxError> {
        ctx.group_add("room").await?;
        Ok(())
    }
}

#[tokio::test]
async fn broadcast_frames_reach_only_accepted_streams() {
    let layer = InMemoryLayer::new();
    let demux = Demultiplexer::builder()
        .stream("pending", || JoinsWithoutAccepting)
        .stream("echo", || Echo)
        .channel_layer(layer.clone())
        .build();
    let mut comm = Communicator::new(demux.clone(), "/");
    assert!(comm.connect().await.is_accepted());
    // Wait until the pending stream has joined.
    wait_until("the join", || {
        chanmux::layer::ChannelLayer::stats(&layer).memberships == 1
    })
    .await;
    demux.group_send("room", "news", &1).await.unwrap();
    assert!(comm.receive_nothing().await, "the member never accepted");
    assert_eq!(
        chanmux::layer::ChannelLayer::stats(&layer).dropped,
        1,
        "and the frame it could not take is counted"
    );
}
