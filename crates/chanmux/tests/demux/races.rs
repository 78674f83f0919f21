//! Timing-independent invariants, checked many times on a multi-threaded
//! runtime where tasks really run in parallel.

use std::time::Duration;

use chanmux::connection::{self, Handshake};
use chanmux::testing::{Communicator, Output};
use chanmux::transport::CloseFrame;
use chanmux::{
    BoxError, ConnectionConfig, Consumer, Context, Demultiplexer, Scope, Shutdown, Text,
};
use serde_json::json;

use crate::support::*;

const ROUNDS: usize = 50;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_followed_at_once_by_a_close_still_ends_in_disconnect() {
    for _ in 0..ROUNDS {
        let log = Log::default();
        let recorder_log = log.clone();
        let demux = Demultiplexer::builder()
            .stream("a", move || Recorder {
                name: "a",
                log: recorder_log.clone(),
            })
            .build();
        let mut comm = Communicator::new(demux, "/");
        assert!(comm.connect().await.is_accepted());
        comm.send_text_to(r#"{"stream":"a","payload":1}"#).await;
        comm.disconnect(1000).await;
        assert!(log.contains("a disconnect 1000"), "{:?}", log.entries());
    }
}

/// Accepts and says so, then echoes once and closes.
struct ReadyCloseAfterFirst;

impl Consumer for ReadyCloseAfterFirst {
    async fn connect(&mut self, ctx: &Context) -> Result<(), BoxError> {
        ctx.accept().await?;
        ctx.send_json(&"ready").await?;
        Ok(())
    }
    async fn receive_text(&mut self, ctx: &Context, text: Text) -> Result<(), BoxError> {
        ctx.send_text(text).await?;
        ctx.close().await?;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_queued_behind_a_close_are_answered_not_lost() {
    for _ in 0..ROUNDS {
        let demux = Demultiplexer::builder()
            .stream("closeafterfirst", || ReadyCloseAfterFirst)
            .stream("echo", || Echo)
            .build();
        let mut comm = Communicator::new(demux, "/");
        assert!(comm.connect().await.is_accepted());
        assert_eq!(
            comm.receive_json_from().await,
            json!({"stream": "closeafterfirst", "payload": "ready"})
        );
        // Make sure `echo` has accepted too, so the socket outlives the close.
        loop {
            comm.send_text_to(r#"{"stream":"echo","payload":0}"#).await;
            if comm.receive_json_from().await.get("error").is_none() {
                break;
            }
        }
        comm.send_text_to(r#"{"stream":"closeafterfirst","payload":1}"#)
            .await;
        comm.send_text_to(r#"{"stream":"closeafterfirst","payload":2}"#)
            .await;
        // Whether frame 2 was queued before the close or arrived after it,
        // the client hears of it exactly once.
        assert_eq!(
            comm.receive_json_from().await,
            json!({"stream": "closeafterfirst", "payload": 1})
        );
        assert_error_frame(
            &comm.receive_json_from().await,
            "stream_not_accepting",
            Some("closeafterfirst"),
        );
        assert!(comm.receive_nothing_within(Duration::from_millis(10)).await);
        comm.disconnect(1000).await;
    }
}

/// Accepts from two tasks at once; each then sends.
struct DoubleAccept {
    log: Log,
}

impl Consumer for DoubleAccept {
    async fn connect(&mut self, ctx: &Context) -> Result<(), BoxError> {
        for name in ["x", "y"] {
            let (ctx, log) = (ctx.clone(), self.log.clone());
            tokio::spawn(async move {
                let accepted = ctx.accept().await;
                let sent = ctx.send_json(&name).await;
                log.push(format!("{name} {accepted:?} {sent:?}"));
            });
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_returns_only_once_it_has_taken_effect_even_when_racing_a_clone() {
    for _ in 0..ROUNDS {
        let log = Log::default();
        let consumer_log = log.clone();
        let demux = Demultiplexer::builder()
            .stream("s", move || DoubleAccept {
                log: consumer_log.clone(),
            })
            .build();
        let mut comm = Communicator::new(demux, "/");
        assert!(comm.connect().await.is_accepted());
        wait_until("both sends", || log.entries().len() == 2).await;
        let mut entries = log.entries();
        entries.sort();
        assert_eq!(entries, ["x Ok(()) Ok(())", "y Ok(()) Ok(())"]);
        comm.disconnect(1000).await;
    }
}

/// One clone accepts while another closes.
struct AcceptRacesClose;

impl Consumer for AcceptRacesClose {
    async fn connect(&mut self, ctx: &Context) -> Result<(), BoxError> {
        let (a, b) = (ctx.clone(), ctx.clone());
        tokio::spawn(async move { a.accept().await });
        tokio::spawn(async move { b.close_with(4003, "raced").await });
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_racing_close_either_refuses_or_accepts_then_closes() {
    for _ in 0..ROUNDS {
        let demux = Demultiplexer::builder()
            .stream("s", || AcceptRacesClose)
            .build();
        let mut comm = Communicator::new(demux, "/");
        match comm.connect().await.refusal_status() {
            Some(status) => assert_eq!(status, 403),
            None => assert_eq!(
                comm.receive_close().await,
                Some(CloseFrame::new(4003, "raced"))
            ),
        }
    }
}

#[tokio::test]
async fn dropping_an_accepted_connection_before_serving_it_disconnects_the_consumer() {
    let log = Log::default();
    let recorder_log = log.clone();
    let demux = Demultiplexer::builder()
        .stream("a", move || Recorder {
            name: "a",
            log: recorder_log.clone(),
        })
        .build();
    match connection::start(&demux, Scope::new("/"), &ConnectionConfig::default()).await {
        Handshake::Accepted(accepted) => drop(accepted),
        Handshake::Refused(refusal) => panic!("refused: {refusal:?}"),
    }
    wait_until("the disconnect", || log.contains("a disconnect 1006")).await;
}

/// Owns the socket and never returns from a handler.
struct Hangs;

impl Consumer for Hangs {
    async fn receive_text(&mut self, _ctx: &Context, _text: Text) -> Result<(), BoxError> {
        std::future::pending().await
    }
}

#[tokio::test(start_paused = true)]
async fn shutdown_closes_a_connection_whose_consumer_hangs_with_a_full_inbox() {
    let shutdown = Shutdown::new();
    let config = ConnectionConfig::default()
        .with_inbox_capacity(2)
        .with_shutdown(shutdown.clone());
    let mut comm = Communicator::new(|| Hangs, "/").config(config);
    assert!(comm.connect().await.is_accepted());
    for _ in 0..10 {
        comm.send_text_to("stuck").await;
    }
    shutdown.trigger();
    assert_eq!(
        comm.receive_close().await,
        Some(CloseFrame::new(1001, "server shutting down"))
    );
    // The consumer never finishes; it is stopped at the close timeout.
    tokio::time::timeout(Duration::from_secs(6), shutdown.drained())
        .await
        .expect("every connection finished");
    assert!(matches!(
        comm.receive_output().await,
        Err(_) | Ok(Output::Close(_))
    ));
}
