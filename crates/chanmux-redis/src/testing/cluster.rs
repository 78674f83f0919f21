//! [`RedisCluster`]: three masters and three replicas, each a `redis-server`
//! on free loopback ports, for tests of the cluster layer and of failover.

use std::collections::HashSet;
use std::process::Stdio;

use tokio::process::{Child, Command};
use tokio::time::timeout;

use super::{DEADLINE, free_port, query, wait_until};

/// A Redis Cluster of three masters, each with one replica, with no
/// persistence; every node is killed when this is dropped.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<Node>,
}

#[derive(Debug)]
struct Node {
    port: u16,
    _dir: tempfile::TempDir,
    child: Option<Child>,
}

/// A node as `CLUSTER NODES` describes it.
struct Listed {
    port: u16,
    master: bool,
    failed: bool,
    slots: Vec<(u16, u16)>,
}

impl RedisCluster {
    /// Starts six nodes, makes them a cluster (`redis-cli --cluster create
    /// --cluster-replicas 1`) and waits until every node says the cluster
    /// is ok and every replica is in sync with its master.
    ///
    /// The nodes notice a dead master after one second
    /// (`cluster-node-timeout 1000`), and any replica may take over.
    ///
    /// # Panics
    ///
    /// When `redis-server` or `redis-cli` is missing, or the cluster is not
    /// ready within 30 s.
    pub async fn start() -> Self {
        // Client and cluster-bus ports, all distinct.
        let mut ports = HashSet::new();
        while ports.len() < 12 {
            ports.insert(free_port().await);
        }
        let ports: Vec<u16> = ports.into_iter().collect();
        let mut nodes = Vec::with_capacity(6);
        for pair in ports.chunks(2) {
            let dir = tempfile::tempdir().expect("a temporary directory");
            let child = Command::new("redis-server")
                .args(["--port", &pair[0].to_string(), "--bind", "127.0.0.1"])
                .args(["--cluster-port", &pair[1].to_string()])
                .args(["--cluster-enabled", "yes"])
                .args(["--cluster-config-file", "nodes.conf"])
                .args(["--cluster-node-timeout", "1000"])
                .args(["--cluster-replica-validity-factor", "0"])
                .args(["--save", "", "--appendonly", "no"])
                .arg("--dir")
                .arg(dir.path())
                .stdout(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .expect("redis-server must be on PATH (scripts/ensure-tools.sh installs it)");
            nodes.push(Node {
                port: pair[0],
                _dir: dir,
                child: Some(child),
            });
        }
        let cluster = RedisCluster { nodes };
        for node in &cluster.nodes {
            wait_until("a cluster node to start", || async {
                query::<String>(node.port, &["PING"]).await.is_some()
            })
            .await;
        }
        let mut create = Command::new("redis-cli");
        create.args(["--cluster", "create"]);
        for node in &cluster.nodes {
            create.arg(format!("127.0.0.1:{}", node.port));
        }
        let status = timeout(
            DEADLINE,
            create
                .args(["--cluster-replicas", "1", "--cluster-yes"])
                .stdout(Stdio::null())
                .kill_on_drop(true)
                .status(),
        )
        .await
        .expect("redis-cli --cluster create finishes")
        .expect("redis-cli must be on PATH");
        assert!(status.success(), "redis-cli --cluster create failed");
        wait_until("the cluster to be ok", || cluster.is_settled()).await;
        cluster
    }

    /// `redis://127.0.0.1:<port>/` of every running node: seeds for a layer.
    pub fn urls(&self) -> Vec<String> {
        self.running()
            .map(|port| format!("redis://127.0.0.1:{port}/"))
            .collect()
    }

    /// The port of the master serving `key`'s slot (a shard channel's name
    /// is its key).
    ///
    /// # Panics
    ///
    /// When no running node answers.
    pub async fn master_of(&self, key: &str) -> u16 {
        let slot = self.slot(key).await;
        self.master_of_slot(slot)
            .await
            .expect("a master serves every slot")
    }

    /// Kills the master serving `key`'s slot, waits until its replica has
    /// taken over and every running node says the cluster is ok, and
    /// returns the new master's port.
    ///
    /// # Panics
    ///
    /// When that does not happen within 30 s.
    pub async fn stop_master_of(&mut self, key: &str) -> u16 {
        let slot = self.slot(key).await;
        let old = self.kill_master_of(key).await;
        let this = &*self;
        wait_until("a replica to take over", || async move {
            matches!(this.master_of_slot(slot).await, Some(port) if port != old)
                && this.is_settled().await
        })
        .await;
        self.master_of_slot(slot).await.expect("a new master")
    }

    /// Kills the master serving `key`'s slot and returns its port at once,
    /// before the cluster notices (see [`stop_master_of`](Self::stop_master_of)
    /// to wait for a replica to take over).
    ///
    /// # Panics
    ///
    /// When no running node answers.
    pub async fn kill_master_of(&mut self, key: &str) -> u16 {
        let old = self.master_of(key).await;
        let node = self
            .nodes
            .iter_mut()
            .find(|node| node.port == old)
            .expect("the master is one of ours");
        if let Some(mut child) = node.child.take() {
            let _ = child.kill().await;
        }
        old
    }

    /// `PUBSUB SHARDCHANNELS pattern` on every running node: the shard
    /// channels with subscribers there, as `(port, sorted names)`.
    ///
    /// # Panics
    ///
    /// When a running node does not answer.
    pub async fn shard_channels(&self, pattern: &str) -> Vec<(u16, Vec<String>)> {
        let mut all = Vec::new();
        for port in self.running() {
            let mut names: Vec<String> = query(port, &["PUBSUB", "SHARDCHANNELS", pattern])
                .await
                .expect("PUBSUB SHARDCHANNELS");
            names.sort();
            all.push((port, names));
        }
        all
    }

    fn running(&self) -> impl Iterator<Item = u16> + '_ {
        self.nodes
            .iter()
            .filter(|node| node.child.is_some())
            .map(|node| node.port)
    }

    async fn slot(&self, key: &str) -> u16 {
        for port in self.running() {
            if let Some(slot) = query(port, &["CLUSTER", "KEYSLOT", key]).await {
                return slot;
            }
        }
        panic!("no cluster node answers");
    }

    /// The master serving `slot`, as the first running node that answers
    /// sees it.
    async fn master_of_slot(&self, slot: u16) -> Option<u16> {
        for port in self.running() {
            if let Some(listed) = list_nodes(port).await {
                return listed
                    .iter()
                    .find(|n| {
                        n.master && !n.failed && n.slots.iter().any(|r| (r.0..=r.1).contains(&slot))
                    })
                    .map(|n| n.port);
            }
        }
        None
    }

    /// Every running node says the cluster is ok, and every replica's link
    /// to its master is up.
    async fn is_settled(&self) -> bool {
        for port in self.running() {
            let Some(info) = query::<String>(port, &["CLUSTER", "INFO"]).await else {
                return false;
            };
            if !info.contains("cluster_state:ok") {
                return false;
            }
            let Some(replication) = query::<String>(port, &["INFO", "replication"]).await else {
                return false;
            };
            if replication.contains("role:slave") && !replication.contains("master_link_status:up")
            {
                return false;
            }
        }
        true
    }
}

/// `CLUSTER NODES` from the node at `port`, parsed.
async fn list_nodes(port: u16) -> Option<Vec<Listed>> {
    let text: String = query(port, &["CLUSTER", "NODES"]).await?;
    let mut listed = Vec::new();
    for line in text.lines() {
        // <id> <ip:port@bus> <flags> <master> <ping> <pong> <epoch> <link> <slot>...
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 8 {
            continue;
        }
        let Some(port) = fields[1]
            .split('@')
            .next()
            .and_then(|a| a.rsplit(':').next())
            .and_then(|p| p.parse().ok())
        else {
            continue;
        };
        let flags: Vec<&str> = fields[2].split(',').collect();
        let slots = fields[8..]
            .iter()
            .filter(|s| !s.starts_with('['))
            .filter_map(|s| match s.split_once('-') {
                Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
                None => s.parse().ok().map(|n| (n, n)),
            })
            .collect();
        listed.push(Listed {
            port,
            master: flags.contains(&"master"),
            failed: flags.iter().any(|f| f.starts_with("fail")),
            slots,
        });
    }
    Some(listed)
}
