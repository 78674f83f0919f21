//! Real Redis for tests (feature `test-util`): a `redis-server` on a free
//! loopback port ([`RedisServer`]), or a Redis Cluster of six
//! ([`RedisCluster`]).

mod cluster;

pub use cluster::RedisCluster;

use std::future::Future;
use std::process::Stdio;
use std::time::Duration;

use redis::FromRedisValue;
use tokio::net::TcpListener;
use tokio::process::{Child, Command};
use tokio::time::{Instant, sleep, timeout};

/// How long a server or cluster may take to start, or a failover to finish.
const DEADLINE: Duration = Duration::from_secs(30);

/// A `redis-server` child process with no persistence; killed when dropped.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

/// A loopback port nobody listens on right now.
///
/// # Panics
///
/// When no loopback port can be bound.
pub async fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    listener.local_addr().expect("a bound address").port()
}

impl RedisServer {
    /// Starts a server with no persistence on a free port.
    ///
    /// # Panics
    ///
    /// When `redis-server` is not on `PATH` or does not start within 10 s.
    pub async fn start() -> Self {
        let mut server = RedisServer {
            port: free_port().await,
            dir: tempfile::tempdir().expect("a temporary directory"),
            child: None,
        };
        server.restart().await;
        server
    }

    /// `redis://127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server and waits for it to be gone.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Already gone is as good as killed.
            let _ = child.kill().await;
        }
    }

    /// Starts the server (again) on the same port and waits until it answers.
    ///
    /// # Panics
    ///
    /// When it is running, or does not start.
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "stop it first");
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server must be on PATH (scripts/ensure-tools.sh installs it)");
        self.child = Some(child);
        let port = self.port;
        wait_until("redis-server to answer", || async move {
            query::<String>(port, &["PING"]).await.is_some()
        })
        .await;
    }

    /// The Redis channels with at least one subscriber that match `pattern`
    /// (`PUBSUB CHANNELS pattern`), sorted: what the layers are subscribed to.
    ///
    /// # Panics
    ///
    /// When the server does not answer as Redis does.
    pub async fn subscribed_channels(&self, pattern: &str) -> Vec<String> {
        let mut names: Vec<String> = query(self.port, &["PUBSUB", "CHANNELS", pattern])
            .await
            .expect("redis-server answers PUBSUB CHANNELS");
        names.sort();
        names
    }
}

/// Runs `args` on the node at `port`; `None` if it does not answer (within
/// 2 s) or answers with an error.
pub(crate) async fn query<T: FromRedisValue>(port: u16, args: &[&str]) -> Option<T> {
    let ask = async {
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).ok()?;
        let mut connection = client.get_multiplexed_async_connection().await.ok()?;
        let mut command = redis::cmd(args[0]);
        for arg in &args[1..] {
            command.arg(*arg);
        }
        command.query_async(&mut connection).await.ok()
    };
    timeout(Duration::from_secs(2), ask).await.ok().flatten()
}

/// Waits (at most [`DEADLINE`]) until `condition` holds, checking every 50 ms.
pub(crate) async fn wait_until<F, Fut>(what: &str, condition: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + DEADLINE;
    while !condition().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        sleep(Duration::from_millis(50)).await;
    }
}
