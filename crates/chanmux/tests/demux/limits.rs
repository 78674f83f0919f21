//! Bounded queues (3m): an overloaded stream, and a client that stops reading.

use std::sync::Arc;
use std::time::Duration;

use chanmux::testing::{Communicator, Output};
use chanmux::{BoxError, ConnectionConfig, Consumer, Context, Demultiplexer, SendError};
use serde_json::json;
use tokio::sync::Semaphore;

use crate::support::*;

#[tokio::test]
async fn a_full_stream_queue_answers_stream_overloaded_while_other_streams_flow() {
    let gate = Arc::new(Semaphore::new(0));
    let held = gate.clone();
    let demux = Demultiplexer::builder()
        .stream("slow", move || Gated { gate: held.clone() })
        .stream("echo", || Echo)
        .stream_queue_capacity(2)
        .build();
    let mut comm = Communicator::new(demux, "/");
    assert!(comm.connect().await.is_accepted());

    // The first frame is taken by the handler, which then waits at the gate.
    comm.send_json_to(&json!({"stream": "slow", "payload": 0}))
        .await;
    assert_eq!(
        comm.receive_json_from().await,
        json!({"stream": "slow", "payload": {"started": 0}})
    );
    // Two more fill the queue; the fourth is refused, and said so.
    for i in 1..=3 {
        comm.send_json_to(&json!({"stream": "slow", "payload": i}))
            .await;
    }
    assert_error_frame(
        &comm.receive_json_from().await,
        "stream_overloaded",
        Some("slow"),
    );
    comm.send_json_to(&json!({"stream": "echo", "payload": "flows"}))
        .await;
    assert_eq!(
        comm.receive_json_from().await,
        json!({"stream": "echo", "payload": "flows"})
    );

    // Released, the stream handles exactly what was queued, in order.
    gate.add_permits(3);
    let mut echoed = Vec::new();
    while let Ok(Output::Text(text)) = comm.receive_output().await {
        let reply: serde_json::Value = serde_json::from_str(&text).unwrap();
        if reply["payload"].is_number() {
            echoed.push(reply["payload"].as_i64().unwrap());
        }
        if echoed.len() == 3 {
            break;
        }
    }
    assert_eq!(echoed, [0, 1, 2]);
    assert!(
        comm.receive_nothing().await,
        "frame 3 was dropped, not delayed"
    );
}

/// Sends as fast as it can from connect on, logging how the sends end.
struct Flood {
    log: Log,
}

impl Consumer for Flood {
    async fn connect(&mut self, ctx: &Context) -> Result<(), BoxError> {
        ctx.accept().await?;
        let ctx = ctx.clone();
        let log = self.log.clone();
        tokio::spawn(async move {
            for i in 0.. {
                if let Err(e) = ctx.send_json(&json!({"n": i})).await {
                    log.push(format!("send failed: {e:?}"));
                    return;
                }
            }
        });
        Ok(())
    }
    async fn disconnect(&mut self, _ctx: &Context, code: u16) -> Result<(), BoxError> {
        self.log.push(format!("disconnect {code}"));
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn a_client_that_stops_reading_is_disconnected_with_1013_after_the_timeout() {
    let log = Log::default();
    let consumer_log = log.clone();
    let demux = Demultiplexer::builder()
        .stream("flood", move || Flood {
            log: consumer_log.clone(),
        })
        .build();
    let config = ConnectionConfig::default()
        .with_outbound_capacity(8)
        .with_slow_client_timeout(Duration::from_secs(3));
    let mut comm = Communicator::new(demux, "/")
        .config(config)
        .client_buffer(4);
    assert!(comm.connect().await.is_accepted());

    // The client reads nothing. Queues fill, sends wait; memory stays bounded.
    tokio::time::sleep(Duration::from_millis(2900)).await;
    assert!(
        log.entries().is_empty(),
        "still within the timeout: {:?}",
        log.entries()
    );
    // At the timeout the server tries for up to 1 s to send a 1013 close
    // (which cannot get through a full buffer), then drops the client.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(comm.is_finished(), "the connection ended");
    assert_eq!(
        log.entries(),
        [
            format!("send failed: {:?}", SendError::Closed),
            "disconnect 1013".into()
        ]
    );

    // What reached the client is an unbroken run from the start, and at most
    // the bounded buffers' worth.
    let mut received = 0;
    while let Ok(Output::Text(text)) = comm.receive_output().await {
        let reply: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(reply["payload"]["n"], received);
        received += 1;
    }
    assert!((1..=8 + 4 + 32 + 1).contains(&received), "{received}");
}
