//! The layer on a real Redis Cluster (three masters, three replicas):
//! conformance, sharded delivery between two instances (as two processes),
//! subscriptions only on the shards that serve them, and failover.

mod common;

use chanmux_redis::testing as support;

use std::sync::Arc;
use std::time::Duration;

use chanmux::layer::{ChannelLayer, ChannelName, GroupName, Message, SharedLayer};
use chanmux::testing::layer_conformance;
use chanmux_redis::{ConnectError, RedisLayer, RedisLayerConfig};
use common::{WAIT, event, mailbox, receive, send_until_received};
use tokio::sync::mpsc;

async fn connect(cluster: &support::RedisCluster) -> RedisLayer {
    let urls = cluster.urls();
    let seeds: Vec<&str> = urls.iter().map(String::as_str).collect();
    let config = RedisLayerConfig::default().with_operation_timeout(Duration::from_secs(2));
    RedisLayer::connect_cluster_with_config(&seeds, config)
        .await
        .unwrap()
}

/// Two instances (as two processes), each with one member in `room.x`.
struct Room {
    a: RedisLayer,
    b: RedisLayer,
    room: GroupName,
    in_a: ChannelName,
    inbox_a: mpsc::Receiver<Message>,
    in_b: ChannelName,
    inbox_b: mpsc::Receiver<Message>,
}

impl Room {
    async fn join(cluster: &support::RedisCluster) -> Room {
        let (a, b) = (connect(cluster).await, connect(cluster).await);
        let room = GroupName::new("room.x").unwrap();
        let (in_a, inbox_a) = mailbox(&a);
        let (in_b, inbox_b) = mailbox(&b);
        a.group_add(&room, &in_a).await.unwrap();
        b.group_add(&room, &in_b).await.unwrap();
        Room {
            a,
            b,
            room,
            in_a,
            inbox_a,
            in_b,
            inbox_b,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_layer_passes_the_conformance_suite() {
    let cluster = support::RedisCluster::start().await;
    let cluster = &cluster;
    layer_conformance::run_all(|| async move {
        let a: SharedLayer = Arc::new(connect(cluster).await);
        let b: SharedLayer = Arc::new(connect(cluster).await);
        (a, b)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_deliver_each_others_messages_subscribing_only_on_the_groups_shards() {
    let cluster = support::RedisCluster::start().await;
    let Room {
        a,
        b,
        room,
        in_a,
        mut inbox_a,
        in_b,
        mut inbox_b,
    } = Room::join(&cluster).await;
    a.group_send(&room, event(1)).await.unwrap();
    receive(&mut inbox_a, 1).await;
    receive(&mut inbox_b, 1).await;
    b.group_send(&room, event(2)).await.unwrap();
    receive(&mut inbox_a, 2).await;
    receive(&mut inbox_b, 2).await;
    b.send(&in_a, event(3)).await.unwrap();
    receive(&mut inbox_a, 3).await;
    a.send(&in_b, event(4)).await.unwrap();
    receive(&mut inbox_b, 4).await;

    // Groups with members only in `a`, hashing to various shards: each is
    // subscribed on its own shard's master, once, and on no other node.
    let names: Vec<String> = (0..6).map(|i| format!("lobby{i}")).collect();
    let (member, _inbox) = mailbox(&a);
    for name in &names {
        a.group_add(&GroupName::new(name).unwrap(), &member)
            .await
            .unwrap();
    }
    let placement = cluster.shard_channels("chanmux:g:lobby*").await;
    for name in &names {
        let topic = format!("chanmux:g:{name}");
        let on: Vec<u16> = placement
            .iter()
            .filter(|(_, topics)| topics.contains(&topic))
            .map(|(port, _)| *port)
            .collect();
        assert_eq!(on, [cluster.master_of(&topic).await], "{topic}");
    }
    // Each instance's own topic, once.
    let processes: usize = cluster
        .shard_channels("chanmux:p:*")
        .await
        .iter()
        .map(|(_, topics)| topics.len())
        .sum();
    assert_eq!(processes, 2);

    // The last member leaving ends the subscription.
    for name in &names {
        a.group_discard(&GroupName::new(name).unwrap(), &member)
            .await
            .unwrap();
    }
    tokio::time::timeout(WAIT, async {
        while cluster
            .shard_channels("chanmux:g:lobby*")
            .await
            .iter()
            .any(|(_, topics)| !topics.is_empty())
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("no subscription left for groups without members");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_resumes_after_a_groups_master_fails_over() {
    let mut cluster = support::RedisCluster::start().await;
    let Room {
        a,
        b,
        room,
        in_a,
        mut inbox_a,
        in_b,
        mut inbox_b,
    } = Room::join(&cluster).await;
    a.group_send(&room, event(1)).await.unwrap();
    receive(&mut inbox_b, 1).await;

    let old = cluster.master_of("chanmux:g:room.x").await;
    let new = cluster.stop_master_of("chanmux:g:room.x").await;
    assert_ne!(old, new);

    // The same layers, not rebuilt: group sends both ways arrive again.
    send_until_received(|| a.group_send(&room, event(5)), &mut inbox_b, 5).await;
    send_until_received(|| b.group_send(&room, event(6)), &mut inbox_a, 6).await;
    // Direct sends too (each instance's topic may have moved as well).
    send_until_received(|| a.send(&in_b, event(7)), &mut inbox_b, 7).await;
    send_until_received(|| b.send(&in_a, event(8)), &mut inbox_a, 8).await;
    assert!(a.is_connected() && b.is_connected());
    // Subscribed on the new master, and on no other node.
    let placement = cluster.shard_channels("chanmux:g:room.x").await;
    for (port, topics) in placement {
        assert_eq!(
            topics.len(),
            if port == new { 1 } else { 0 },
            "on {port}: {topics:?}"
        );
    }
}

/// A group whose Redis channel is on the master serving `topic_of(other)`'s
/// slot (`same`), or on another one (`!same`).
async fn group_placed(cluster: &support::RedisCluster, other: &str, same: bool) -> GroupName {
    let port = cluster.master_of(&format!("chanmux:g:{other}")).await;
    for i in 0.. {
        let name = format!("{other}-{i}");
        if (cluster.master_of(&format!("chanmux:g:{name}")).await == port) == same {
            return GroupName::new(&name).unwrap();
        }
    }
    unreachable!()
}

/// While one shard's master is down and not yet replaced, a group on
/// another shard is joined as usual (within the operation timeout), and its
/// messages arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_on_a_healthy_shard_can_be_joined_while_another_shards_master_is_down() {
    let mut cluster = support::RedisCluster::start().await;
    let (a, b) = (connect(&cluster).await, connect(&cluster).await);
    let down = GroupName::new("down").unwrap();
    let healthy = group_placed(&cluster, "down", false).await;
    let (member, mut inbox) = mailbox(&a);
    a.group_add(&down, &member).await.unwrap();
    cluster.kill_master_of("chanmux:g:down").await;
    tokio::time::timeout(WAIT, async {
        while a.is_connected() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the layer notices the lost master");

    a.group_add(&healthy, &member).await.unwrap();
    // Answered before the failover (a replica needs over a second to be
    // elected): not by a full sync, which cannot succeed before.
    assert!(!a.is_connected());
    b.group_send(&healthy, event(1)).await.unwrap();
    receive(&mut inbox, 1).await;
}

#[tokio::test]
async fn a_server_not_in_cluster_mode_is_a_clear_error_at_start() {
    let server = support::RedisServer::start().await;
    let url = server.url();
    let error = RedisLayer::connect_cluster(&[&url]).await.unwrap_err();
    assert!(
        matches!(error, ConnectError::Unreachable { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("cluster"), "{error}");
}
