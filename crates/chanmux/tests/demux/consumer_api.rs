//! What a consumer can do beyond send and receive: tasks and timers tied to
//! its life, the end hook, group sends, application errors, per-stream
//! authorization; and the communicator's stream-aware calls.

use std::future::pending;
use std::time::Duration;

use chanmux::layer::{InMemoryLayer, LayerStats};
use chanmux::testing::Communicator;
use chanmux::{
    BoxError, ConnectionConfig, Consumer, Context, Demultiplexer, GroupError, Scope, SendError,
    Text,
};
use serde_json::json;

use crate::support::*;

/// Logs "dropped <what>" when dropped: shows a task or handler was stopped.
struct DropLog(Log, &'static str);

impl Drop for DropLog {
    fn drop(&mut self) {
        self.0.push(format!("dropped {}", self.1));
    }
}

/// Starts a task tied to the consumer that never ends by itself; it logs
/// "dropped task" when it is stopped.
fn spawn_forever(ctx: &Context, log: &Log) {
    let guard = DropLog(log.clone(), "task");
    ctx.spawn(async move {
        let _guard = guard;
        pending::<()>().await;
    });
}

/// Accepts, starts a task that never ends and one that waits for
/// `closing`; closes on `"close"`, fails on `"fail"`, and hangs on
/// `"hang"`; logs its disconnect.
struct Lifelong {
    log: Log,
}

impl Consumer for Lifelong {
    async fn connect(&mut self, ctx: &Context) -> Result<(), BoxError> {
        ctx.accept().await?;
        spawn_forever(ctx, &self.log);
        let (log, closing) = (self.log.clone(), ctx.clone());
        tokio::spawn(async move {
            closing.closing().await;
            log.push("closing");
        });
        Ok(())
    }

    async fn receive_text(&mut self, ctx: &Context, text: Text) -> Result<(), BoxError> {
        match text.value()?.as_str() {
            Some("close") => ctx.close_with(4001, "done").await?,
            Some("fail") => return Err("told to fail".into()),
            Some("hang") => {
                let _guard = DropLog(self.log.clone(), "handler");
                ctx.send_json(&"hanging").await?;
                pending::<()>().await;
            }
            _ => {}
        }
        Ok(())
    }

    async fn disconnect(&mut self, _ctx: &Context, code: u16) -> Result<(), BoxError> {
        self.log.push(format!("disconnect {code}"));
        Ok(())
    }
}

fn lifelong(log: &Log) -> Demultiplexer {
    let log = log.clone();
    Demultiplexer::builder()
        .stream("echo", || Echo)
        .pattern("life:{id}", move || Lifelong { log: log.clone() })
        .build()
}

async fn started(log: &Log) -> Communicator {
    let mut comm = Communicator::new(lifelong(log), "/");
    assert!(comm.connect().await.is_accepted());
    assert_eq!(comm.subscribe("life:1", None).await, Ok(()));
    comm
}

async fn ends_with(log: &Log, code: u16) {
    let disconnect = format!("disconnect {code}");
    wait_until(
        &format!("{disconnect}, the task stopped and closing"),
        || log.contains(&disconnect) && log.contains("dropped task") && log.contains("closing"),
    )
    .await;
    // A second call would come soon after the first, if at all.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(
        log.entries()
            .iter()
            .filter(|e| e.starts_with("disconnect"))
            .count(),
        1,
        "disconnect runs once: {:?}",
        log.entries()
    );
}

#[tokio::test]
async fn unsubscribing_stops_the_consumers_tasks_and_runs_its_disconnect_with_1000() {
    let log = Log::default();
    let mut comm = started(&log).await;
    assert_eq!(comm.unsubscribe("life:1").await, Ok(()));
    ends_with(&log, 1000).await;
}

#[tokio::test]
async fn closing_the_stream_ends_the_consumer_with_its_own_code() {
    let log = Log::default();
    let mut comm = started(&log).await;
    comm.send_to("life:1", &"close").await;
    assert_eq!(
        comm.receive_json_from().await,
        json!({"closed": "life:1", "code": 4001, "reason": "done"})
    );
    ends_with(&log, 4001).await;
}

#[tokio::test]
async fn a_failing_handler_ends_the_consumer_with_1011() {
    let log = Log::default();
    let mut comm = started(&log).await;
    comm.send_to("life:1", &"fail").await;
    ends_with(&log, 1011).await;
}

#[tokio::test]
async fn the_client_leaving_ends_the_consumer_with_its_code() {
    let log = Log::default();
    let mut comm = started(&log).await;
    comm.disconnect(4321).await;
    ends_with(&log, 4321).await;
}

#[tokio::test]
async fn a_handler_still_running_when_the_client_leaves_is_cancelled_and_disconnect_still_runs() {
    let log = Log::default();
    let mut comm = started(&log).await;
    comm.send_to("life:1", &"hang").await;
    assert_eq!(comm.receive_from("life:1").await, json!("hanging"));
    comm.disconnect(1001).await;
    ends_with(&log, 1001).await;
    assert!(log.contains("dropped handler"));
}

#[tokio::test]
async fn a_hanging_handler_is_cancelled_by_an_unsubscribe_too() {
    let log = Log::default();
    let mut comm = started(&log).await;
    comm.send_to("life:1", &"hang").await;
    assert_eq!(comm.receive_from("life:1").await, json!("hanging"));
    assert_eq!(comm.unsubscribe("life:1").await, Ok(()));
    ends_with(&log, 1000).await;
    assert!(log.contains("dropped handler"));
}

/// Never returns from its disconnect, to be cut off at the close timeout.
struct StuckDisconnect {
    log: Log,
    /// Dropped with the consumer: shows the cut-off happened.
    _alive: DropLog,
}

impl Consumer for StuckDisconnect {
    async fn connect(&mut self, ctx: &Context) -> Result<(), BoxError> {
        ctx.accept().await?;
        spawn_forever(ctx, &self.log);
        Ok(())
    }

    async fn disconnect(&mut self, _ctx: &Context, code: u16) -> Result<(), BoxError> {
        self.log.push(format!("disconnect {code}"));
        pending().await
    }
}

#[tokio::test]
async fn a_consumer_cut_off_at_the_close_timeout_still_stops_its_tasks() {
    let log = Log::default();
    let consumer_log = log.clone();
    let demux = Demultiplexer::builder()
        .stream("s", move || StuckDisconnect {
            log: consumer_log.clone(),
            _alive: DropLog(consumer_log.clone(), "consumer"),
        })
        .build();
    let config = ConnectionConfig::default().with_close_timeout(Duration::from_millis(100));
    let mut comm = Communicator::new(demux, "/").config(config);
    assert!(comm.connect().await.is_accepted());
    comm.disconnect(1000).await;
    wait_until("the task to stop and the consumer to be cut off", || {
        log.contains("dropped task") && log.contains("dropped consumer")
    })
    .await;
    assert_eq!(log.entries()[0], "disconnect 1000");
}

/// Joins `room` and relays what it is sent to the room's members' clients.
struct Relay;

impl Consumer for Relay {
    async fn connect(&mut self, ctx: &Context) -> Result<(), BoxError> {
        ctx.group_add("room").await?;
        ctx.accept().await?;
        Ok(())
    }

    async fn receive_text(&mut self, ctx: &Context, text: Text) -> Result<(), BoxError> {
        if text.as_str() == r#""typed""# {
            ctx.group_send("room", &json!({"typed": true})).await?;
        } else {
            ctx.group_send_text("room", text).await?;
        }
        Ok(())
    }
}

#[tokio::test]
async fn a_consumer_sends_to_its_group_in_one_call_and_every_member_hears_it() {
    let layer = InMemoryLayer::new();
    let demux = Demultiplexer::builder()
        .pattern("room:{id}", || Relay)
        .channel_layer(std::sync::Arc::new(layer.clone()))
        .build();
    let mut alice = Communicator::new(demux.clone(), "/");
    let mut bob = Communicator::new(demux, "/");
    for comm in [&mut alice, &mut bob] {
        assert!(comm.connect().await.is_accepted());
        assert_eq!(comm.subscribe("room:1", None).await, Ok(()));
    }
    alice
        .send_text_to(r#"{"stream": "room:1", "payload": [1.50]}"#)
        .await;
    for comm in [&mut alice, &mut bob] {
        assert_eq!(
            comm.receive_text_from().await,
            r#"{"stream":"room:1","payload":[1.50]}"#
        );
    }
    bob.send_to("room:1", &"typed").await;
    for comm in [&mut alice, &mut bob] {
        assert_eq!(comm.receive_from("room:1").await, json!({"typed": true}));
    }
    // Leaving the stream leaves the group.
    assert_eq!(bob.unsubscribe("room:1").await, Ok(()));
    alice.send_to("room:1", &2).await;
    assert_eq!(alice.receive_from("room:1").await, json!(2));
    assert!(bob.receive_nothing().await);
    alice.disconnect(1000).await;
    wait_until("the layer to be empty", || layer_empty(&layer)).await;
}

fn layer_empty(layer: &InMemoryLayer) -> bool {
    use chanmux::layer::ChannelLayer;
    let stats: LayerStats = layer.stats();
    stats.channels == 0 && stats.groups == 0 && stats.memberships == 0
}

/// Tries what a consumer owning the socket cannot do, and a bad code.
struct Misuse {
    log: Log,
}

impl Consumer for Misuse {
    async fn receive_text(&mut self, ctx: &Context, _text: Text) -> Result<(), BoxError> {
        let group = ctx.group_send("g", &1).await;
        self.log
            .push(format!("{}", matches!(group, Err(GroupError::NotAStream))));
        let bad = ctx.send_app_error("unknown_stream", "x").await;
        self.log
            .push(format!("{}", matches!(bad, Err(SendError::InvalidCode(_)))));
        let bad = ctx.send_app_error("Not-Snake", "x").await;
        self.log
            .push(format!("{}", matches!(bad, Err(SendError::InvalidCode(_)))));
        ctx.send_app_error("quota_exceeded", "slow down").await?;
        Ok(())
    }
}

#[tokio::test]
async fn application_codes_are_checked_and_a_socket_consumer_has_no_stream_to_send_to_a_group() {
    let log = Log::default();
    let consumer_log = log.clone();
    let app = move || Misuse {
        log: consumer_log.clone(),
    };
    let config = ConnectionConfig::default().with_layer(std::sync::Arc::new(InMemoryLayer::new()));
    let mut comm = Communicator::new(app, "/").config(config);
    assert!(comm.connect().await.is_accepted());
    comm.send_text_to("anything").await;
    assert_eq!(
        comm.receive_json_from().await,
        json!({"error": {"code": "quota_exceeded", "message": "slow down"}, "stream": null})
    );
    assert_eq!(log.entries(), ["true", "true", "true"]);
}

/// The user an authentication middleware found, in the scope's extensions.
#[derive(Clone)]
struct User(&'static str);

/// Admits only the user whose name is the room's id, or an admin.
struct Private;

impl Consumer for Private {
    async fn connect(&mut self, ctx: &Context) -> Result<(), BoxError> {
        let owner = ctx.capture("user").unwrap_or_default();
        match ctx.scope().extensions.get::<User>() {
            Some(User(name)) if *name == owner || *name == "admin" => ctx.accept().await?,
            Some(User(name)) => ctx.refuse_with(format!("{name} may not read {owner}'s inbox")),
            None => ctx.refuse_with("log in first"),
        }
        Ok(())
    }
}

#[tokio::test]
async fn a_stream_authorizes_each_subscription_from_the_scope() {
    let demux = Demultiplexer::builder()
        .stream("echo", || Echo)
        .pattern("inbox:{user}", || Private)
        .build();
    let scope = Scope::new("/")
        .with_header("authorization", "Bearer ann-token")
        .with_extension(User("ann"));
    assert_eq!(
        scope.headers["authorization"], "Bearer ann-token",
        "with_header adds the header"
    );
    let mut ann = Communicator::with_scope(demux.clone(), scope);
    assert!(ann.connect().await.is_accepted());
    assert_eq!(ann.subscribe("inbox:ann", None).await, Ok(()));
    let refused = ann.subscribe("inbox:bob", None).await.unwrap_err();
    assert_eq!(refused["error"]["code"], "subscription_refused");
    assert_eq!(refused["error"]["message"], "ann may not read bob's inbox");
    let mut anonymous = Communicator::new(demux, "/");
    assert!(anonymous.connect().await.is_accepted());
    let refused = anonymous.subscribe("inbox:ann", None).await.unwrap_err();
    assert_eq!(refused["error"]["message"], "log in first");
}

#[tokio::test]
async fn receive_from_keeps_other_streams_frames_for_later_in_order() {
    let demux = Demultiplexer::builder()
        .stream("a", || Echo)
        .stream("b", || Echo)
        .build();
    let mut comm = Communicator::new(demux, "/");
    assert!(comm.connect().await.is_accepted());
    comm.send_to("a", &1).await;
    comm.send_to("a", &2).await;
    comm.send_to("b", &3).await;
    assert_eq!(comm.receive_from("b").await, json!(3));
    assert_eq!(
        comm.receive_json_from().await,
        json!({"stream": "a", "payload": 1})
    );
    assert_eq!(comm.receive_from("a").await, json!(2));
    assert!(comm.receive_nothing().await);
}
