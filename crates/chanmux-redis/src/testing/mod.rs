//! Real Redis for tests (feature `test-util`): a `redis-server` on a free
//! loopback port ([`RedisServer`]), or a Redis Cluster of six
//! ([`RedisCluster`]).

mod cluster;

pub use cluster::RedisCluster;

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};

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
        self.wait_until_ready().await;
    }

    async fn wait_until_ready(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if self.ping().await {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "redis-server did not start"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The Redis channels with at least one subscriber that match `pattern`
    /// (`PUBSUB CHANNELS pattern`), sorted: what the layers are subscribed to.
    ///
    /// # Panics
    ///
    /// When the server does not answer as Redis does.
    pub async fn subscribed_channels(&self, pattern: &str) -> Vec<String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))
            .await
            .expect("connect to redis-server");
        let command = format!(
            "*3\r\n$6\r\nPUBSUB\r\n$8\r\nCHANNELS\r\n${}\r\n{pattern}\r\n",
            pattern.len()
        );
        stream
            .write_all(command.as_bytes())
            .await
            .expect("send PUBSUB");
        let mut reader = tokio::io::BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line).await.expect("a reply");
        let count: usize = line
            .trim_end()
            .strip_prefix('*')
            .and_then(|n| n.parse().ok())
            .expect("an array reply");
        let mut names = Vec::with_capacity(count);
        for _ in 0..count {
            line.clear();
            reader.read_line(&mut line).await.expect("a bulk length");
            line.clear();
            reader.read_line(&mut line).await.expect("a bulk string");
            names.push(line.trim_end().to_owned());
        }
        names.sort();
        names
    }

    async fn ping(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)).await else {
            return false;
        };
        let mut reply = [0u8; 7];
        stream.write_all(b"PING\r\n").await.is_ok()
            && stream.read_exact(&mut reply).await.is_ok()
            && &reply == b"+PONG\r\n"
    }
}
