//! Streams started and stopped by clients leave nothing behind: no
//! consumer, channel, group membership or task, while the connection
//! lasts and after it ends. (The RSS side of this is a benchmark:
//! `chanmux-load churn`, run by scripts/bench.sh.)

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chanmux::layer::{ChannelLayer, InMemoryLayer};
use chanmux::testing::Communicator;
use chanmux::{BoxError, Consumer, Context, Demultiplexer, Text};
use futures_util::future::join_all;
use serde_json::json;

use crate::support::*;

/// Counts the consumers alive.
struct Alive(Arc<AtomicUsize>);

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Joins its room's group, starts a timer that pushes to the client, and
/// relays frames to the room: everything a stream can hold.
struct Member {
    _alive: Alive,
}

impl Consumer for Member {
    async fn connect(&mut self, ctx: &Context) -> Result<(), BoxError> {
        let room = format!("room.{}", ctx.capture("id").unwrap_or_default());
        ctx.group_add(&room).await?;
        ctx.accept().await?;
        let ticker = ctx.clone();
        ctx.spawn(async move {
            let mut ticks = tokio::time::interval(Duration::from_secs(3600));
            loop {
                ticks.tick().await;
                let _ = ticker.send_json(&"tick").await;
            }
        });
        Ok(())
    }

    async fn receive_text(&mut self, ctx: &Context, text: Text) -> Result<(), BoxError> {
        let room = format!("room.{}", ctx.capture("id").unwrap_or_default());
        ctx.group_send_text(&room, text).await?;
        Ok(())
    }
}

const CONNECTIONS: usize = 200;
const STREAMS: usize = 50;

#[tokio::test]
async fn streams_started_and_stopped_by_many_clients_leave_nothing_behind() {
    let layer = InMemoryLayer::new();
    let alive = Arc::new(AtomicUsize::new(0));
    let counter = alive.clone();
    let demux = Demultiplexer::builder()
        .stream("echo", || Echo)
        .pattern("room:{id}", move || {
            counter.fetch_add(1, Ordering::SeqCst);
            Member {
                _alive: Alive(counter.clone()),
            }
        })
        .channel_layer(Arc::new(layer.clone()))
        .build();
    let tasks = || {
        tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks()
    };
    let baseline = tasks();

    let mut clients = Vec::new();
    for _ in 0..CONNECTIONS {
        let mut comm =
            Communicator::new(demux.clone(), "/").receive_timeout(Duration::from_secs(10));
        assert!(comm.connect().await.is_accepted());
        clients.push(comm);
    }
    join_all(clients.iter_mut().enumerate().map(|(n, comm)| async move {
        for i in 0..STREAMS {
            let room = format!("room:{}", (n + i) % 75);
            if i % 2 == 0 {
                assert_eq!(comm.subscribe(&room, None).await, Ok(()));
            } else {
                // The implicit subscribe: a first frame starts it.
                comm.send_to(&room, &json!({"from": n})).await;
            }
            assert_eq!(comm.unsubscribe(&room).await, Ok(()));
        }
    }))
    .await;

    // Connections still open: their streams are gone, with all they held
    // (each connection keeps only its two tasks, reader and writer).
    wait_until("every stopped stream to be freed", || {
        let stats = layer.stats();
        alive.load(Ordering::SeqCst) == 0
            && stats.channels == 0
            && stats.groups == 0
            && stats.memberships == 0
            && tasks() == baseline + 2 * CONNECTIONS
    })
    .await;

    for (n, comm) in clients.iter_mut().enumerate() {
        // Some leave with streams still running, some vanish.
        assert_eq!(comm.subscribe(&format!("room:{n}"), None).await, Ok(()));
        if n % 2 == 0 {
            comm.disconnect(1000).await;
        } else {
            comm.abort().await;
        }
    }
    wait_until("every connection to be freed", || {
        alive.load(Ordering::SeqCst) == 0 && layer.stats().channels == 0 && tasks() == baseline
    })
    .await;
}
