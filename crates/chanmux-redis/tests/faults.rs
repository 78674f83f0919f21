//! Redis missing at start, and Redis restarted under a running layer, with a
//! real redis-server that the test stops and starts.

mod common;

use chanmux_redis::testing as support;

use std::sync::Arc;
use std::time::Duration;

use chanmux::layer::{ChannelLayer, GroupName};
use chanmux_redis::{ConnectError, LayerError, RedisLayer, RedisLayerConfig};
use common::{WAIT, event, mailbox, receive, send_until_received};

async fn wait_for(what: &str, condition: impl Fn() -> bool) {
    tokio::time::timeout(WAIT, async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
}

#[tokio::test]
async fn an_unreachable_redis_is_a_clear_error_at_start() {
    let port = support::free_port().await;
    let url = format!("redis://127.0.0.1:{port}/");
    let config = RedisLayerConfig::default().with_operation_timeout(Duration::from_secs(2));
    let error = RedisLayer::connect_with_config(&url, config)
        .await
        .unwrap_err();
    assert!(
        matches!(error, ConnectError::Unreachable { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains("cannot reach Redis") && message.contains(&url),
        "{message}"
    );

    let error = RedisLayer::connect("not a url").await.unwrap_err();
    assert!(
        matches!(error, ConnectError::InvalidUrl { .. }),
        "{error:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_layer_reconnects_and_resubscribes_after_redis_restarts() {
    let mut server = support::RedisServer::start().await;
    let config = RedisLayerConfig::default().with_operation_timeout(Duration::from_secs(2));
    let receiver = RedisLayer::connect_with_config(&server.url(), config.clone())
        .await
        .unwrap();
    let sender = RedisLayer::connect_with_config(&server.url(), config)
        .await
        .unwrap();
    let group = GroupName::new("restart").unwrap();
    let (member, mut inbox) = mailbox(&receiver);
    receiver.group_add(&group, &member).await.unwrap();
    sender.group_send(&group, event(1)).await.unwrap();
    assert!(inbox.recv().await.is_some());

    server.stop().await;
    wait_for("the layer to notice", || !receiver.is_connected()).await;
    // While Redis is away, sends fail and say so; the process stays up.
    let failed = sender.group_send(&group, event(2)).await;
    assert!(matches!(failed, Err(LayerError::Backend(_))), "{failed:?}");
    // A membership made during the outage waits for Redis to come back.
    let late_group = GroupName::new("joined-during-outage").unwrap();
    let (late, mut late_inbox) = mailbox(&receiver);
    let joining = {
        let (receiver, late_group, late) = (receiver.clone(), late_group.clone(), late.clone());
        tokio::spawn(async move { receiver.group_add(&late_group, &late).await })
    };

    server.restart().await;
    wait_for("the layer to reconnect", || receiver.is_connected()).await;
    joining
        .await
        .unwrap()
        .expect("the join completes once Redis is back");
    // After an outage the first publishes may still fail while the
    // publishing connection comes back.
    send_until_received(|| sender.group_send(&group, event(7)), &mut inbox, 7).await;
    send_until_received(
        || sender.group_send(&late_group, event(8)),
        &mut late_inbox,
        8,
    )
    .await;
    // Direct channel sends work again too.
    sender.send(&member, event(9)).await.unwrap();
    let message = receive(&mut inbox, 9).await;
    assert_eq!(message.message_type(), "test");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_clients_joining_groups_leave_no_membership_in_the_redis_layer() {
    use chanmux::testing::Communicator;
    use chanmux::{BoxError, Consumer, Context, Demultiplexer};

    struct Joins;
    impl Consumer for Joins {
        async fn connect(&mut self, ctx: &Context) -> Result<(), BoxError> {
            ctx.accept().await?;
            ctx.group_add("lobby").await?;
            ctx.send_json(&"joined").await?;
            Ok(())
        }
    }

    let server = support::RedisServer::start().await;
    let layer = RedisLayer::connect(&server.url()).await.unwrap();
    let demux = Demultiplexer::builder()
        .stream("s", || Joins)
        .channel_layer(layer.clone())
        .build();
    let mut open = Vec::new();
    for i in 0..10_000 {
        let mut comm = Communicator::new(demux.clone(), "/");
        assert!(comm.connect().await.is_accepted());
        comm.receive_json_from().await;
        open.push(comm);
        if open.len() == 250 {
            let during = layer.stats();
            assert_eq!(
                (during.channels, during.groups, during.memberships),
                (250, 1, 250)
            );
            for (j, mut comm) in open.drain(..).enumerate() {
                if (i + j) % 4 == 0 {
                    comm.abort().await;
                } else {
                    comm.disconnect(1000).await;
                }
            }
        }
    }
    let stats = layer.stats();
    assert_eq!((stats.channels, stats.groups, stats.memberships), (0, 0, 0));
    // Nor in Redis: the layer unsubscribed from the group it no longer needs.
    wait_for_no_group_subscriptions(&server).await;
}

async fn wait_for_no_group_subscriptions(server: &support::RedisServer) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let left = server.subscribed_channels("chanmux:g:*").await;
        if left.is_empty() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "subscriptions left in Redis: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_racing_channel_closes_leave_nothing_behind() {
    let server = support::RedisServer::start().await;
    let layer = RedisLayer::connect(&server.url()).await.unwrap();
    // Joins and closes of the same channel start together on the two workers,
    // the close delayed by a varying spin, so they interleave in many ways.
    for i in 0..5_000u32 {
        let group = GroupName::new(&format!("race{}", i % 50)).unwrap();
        let (channel, _inbox) = mailbox(&layer);
        let start = Arc::new(std::sync::Barrier::new(2));
        let joiner = {
            let (layer, start, group, channel) =
                (layer.clone(), start.clone(), group.clone(), channel.clone());
            tokio::spawn(async move {
                start.wait();
                let _ = layer.group_add(&group, &channel).await;
            })
        };
        let closer = {
            let (layer, start, channel) = (layer.clone(), start.clone(), channel.clone());
            tokio::spawn(async move {
                start.wait();
                for _ in 0..(i % 64) * 4 {
                    std::hint::spin_loop();
                }
                layer.close_channel(&channel);
            })
        };
        joiner.await.unwrap();
        closer.await.unwrap();
        layer.close_channel(&channel);
    }
    let stats = layer.stats();
    assert_eq!((stats.channels, stats.groups, stats.memberships), (0, 0, 0));
    wait_for_no_group_subscriptions(&server).await;
    // Still working afterwards.
    let group = GroupName::new("after-race").unwrap();
    let (member, mut inbox) = mailbox(&layer);
    layer.group_add(&group, &member).await.unwrap();
    layer.group_send(&group, event(1)).await.unwrap();
    assert!(
        tokio::time::timeout(WAIT, inbox.recv())
            .await
            .unwrap()
            .is_some()
    );
}
