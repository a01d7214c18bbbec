//! A controller group of three `shardctrler` processes on loopback, each
//! with its RocksDB in a temp dir, that tests kill with SIGKILL and restart
//! from their data dirs; plus condition waits with deadlines and checks on
//! configurations.

#![allow(dead_code)] // Each test binary uses a different part.

use std::collections::BTreeMap;
use std::fs::File;
use std::future::Future;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use client::{CtrlerClient, CtrlerClientOptions};
use proto::kv::v1 as pb;
use proto::kv::v1::shard_ctrler_client::ShardCtrlerClient;
use tokio::time::Instant;

/// How long any wait in these tests may take.
pub const DEADLINE: Duration = Duration::from_secs(30);
/// Replicas per controller group.
pub const REPLICAS: usize = 3;

/// Waits until `condition` returns true, polling every 20 ms, or panics
/// naming `what` after `deadline`.
pub async fn wait_for<F, Fut>(what: &str, deadline: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    while !condition().await {
        assert!(
            started.elapsed() < deadline,
            "timed out after {deadline:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub use test_ports::free_ports;

/// Three controller replicas as OS processes.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub grpc: Vec<String>,
    pub http: Vec<String>,
    shards: u32,
    children: Vec<Option<Child>>,
}

impl Cluster {
    /// Starts three replicas of a new cluster of `shards` shards, with
    /// 30 ms ticks and a snapshot every 20 entries (so restarts exercise
    /// snapshot install), and waits for a leader.
    pub async fn start(shards: u32) -> Cluster {
        let ports = free_ports(2 * REPLICAS);
        let address = |port: &u16| format!("127.0.0.1:{port}");
        let mut cluster = Cluster {
            dir: tempfile::tempdir().expect("temp dir"),
            grpc: ports[..REPLICAS].iter().map(address).collect(),
            http: ports[REPLICAS..].iter().map(address).collect(),
            shards,
            children: (0..REPLICAS).map(|_| None).collect(),
        };
        for index in 0..REPLICAS {
            cluster.restart(index);
        }
        cluster.wait_for_leader().await;
        cluster
    }

    /// Starts replica `index` (again) on its data dir.
    pub fn restart(&mut self, index: usize) {
        assert!(self.children[index].is_none(), "replica {index} is running");
        let peers: Vec<String> = (0..REPLICAS)
            .map(|i| format!("{}={}", i + 1, self.grpc[i]))
            .collect();
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("replica-{}.log", index + 1)))
            .expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_shardctrler"))
            .args(["--id", &(index + 1).to_string()])
            .args(["--listen", &self.grpc[index], "--http", &self.http[index]])
            .args(["--peers", &peers.join(",")])
            .args(["--shards", &self.shards.to_string()])
            .args([
                "--tick-ms",
                "30",
                "--compact-interval",
                "20",
                "--compact-keep",
                "5",
            ])
            .arg("--data-dir")
            .arg(self.dir.path().join(format!("replica-{}", index + 1)))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("the shardctrler binary starts");
        self.children[index] = Some(child);
    }

    /// Kills replica `index` with SIGKILL (no flush, no shutdown) and reaps
    /// it.
    pub fn kill(&mut self, index: usize) {
        if let Some(mut child) = self.children[index].take() {
            child.kill().expect("SIGKILL");
            child.wait().expect("reaped");
        }
    }

    /// Stops replica `index` with SIGTERM and returns its exit status
    /// (waiting at most `DEADLINE`).
    pub fn terminate(&mut self, index: usize) -> std::process::ExitStatus {
        let mut child = self.children[index].take().expect("replica running");
        raft::termination::terminate_and_wait(&mut child, DEADLINE).expect("exits on SIGTERM")
    }

    /// Returns a client of the whole group with a generous deadline.
    pub fn client(&self) -> CtrlerClient {
        let options = CtrlerClientOptions {
            deadline: DEADLINE,
            attempt_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_millis(500),
        };
        CtrlerClient::new(&self.grpc, options).expect("valid addresses")
    }

    /// Returns a raw gRPC client of replica `index`.
    pub async fn raw(&self, index: usize) -> ShardCtrlerClient<tonic::transport::Channel> {
        let address = format!("http://{}", self.grpc[index]);
        let started = Instant::now();
        loop {
            if let Ok(client) = ShardCtrlerClient::connect(address.clone()).await {
                return client;
            }
            assert!(started.elapsed() < DEADLINE, "cannot connect to {address}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Returns the replica that answers a linearizable Query, if any.
    pub async fn leader(&self) -> Option<usize> {
        for index in 0..REPLICAS {
            if self.children[index].is_none() {
                continue;
            }
            let address = format!("http://{}", self.grpc[index]);
            let Ok(mut client) = ShardCtrlerClient::connect(address).await else {
                continue;
            };
            if let Ok(reply) = client.query(pb::QueryRequest { num: -1 }).await
                && reply.get_ref().status == pb::Status::Ok as i32
            {
                return Some(index);
            }
        }
        None
    }

    /// Waits until a replica answers as leader and returns it.
    pub async fn wait_for_leader(&self) -> usize {
        let started = Instant::now();
        loop {
            if let Some(leader) = self.leader().await {
                return leader;
            }
            assert!(
                started.elapsed() < DEADLINE,
                "no leader within {DEADLINE:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Returns a running replica other than the leader.
    pub async fn follower(&self) -> usize {
        let leader = self.wait_for_leader().await;
        (0..REPLICAS)
            .find(|index| *index != leader && self.children[*index].is_some())
            .expect("a running follower")
    }

    /// Returns every configuration replica `index` has applied, from 0 to
    /// `latest` (waiting for the replica to reach it), read through Watch,
    /// which any replica serves.
    pub async fn history_at(&self, index: usize, latest: u64) -> Vec<pb::Config> {
        let mut client = self.raw(index).await;
        let mut stream = client
            .watch(pb::WatchRequest { from_num: 0 })
            .await
            .expect("watch accepted")
            .into_inner();
        let mut history = Vec::new();
        while history.len() as u64 <= latest {
            let next = tokio::time::timeout(DEADLINE, stream.message())
                .await
                .unwrap_or_else(|_| panic!("replica {index} did not reach config {latest}"))
                .expect("watch stream healthy")
                .expect("watch stream open");
            history.push(next);
        }
        history
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for index in 0..REPLICAS {
            self.kill(index);
        }
    }
}

/// Returns the number of shards each group owns, zero included.
pub fn shard_counts(config: &pb::Config) -> BTreeMap<u64, usize> {
    let mut counts: BTreeMap<u64, usize> = config.groups.keys().map(|gid| (*gid, 0)).collect();
    for gid in &config.shards {
        *counts.entry(*gid).or_default() += 1;
    }
    counts
}

/// Checks the shape of a configuration: every group present, every shard
/// on a group of the configuration (or on 0 when there are none), and
/// max - min <= 1 over the groups.
pub fn check_balanced(config: &pb::Config, gids: &[u64]) {
    let mut present: Vec<u64> = config.groups.keys().copied().collect();
    present.sort_unstable();
    let mut expected = gids.to_vec();
    expected.sort_unstable();
    assert_eq!(present, expected, "groups of config {}", config.num);
    for (shard, gid) in config.shards.iter().enumerate() {
        if gids.is_empty() {
            assert_eq!(*gid, 0, "shard {shard} of config {} owned", config.num);
        } else {
            assert!(
                config.groups.contains_key(gid),
                "shard {shard} of config {} on absent gid {gid}",
                config.num
            );
        }
    }
    let counts = shard_counts(config);
    let groups: Vec<usize> = gids.iter().map(|gid| counts[gid]).collect();
    if let (Some(max), Some(min)) = (groups.iter().max(), groups.iter().min()) {
        assert!(
            max - min <= 1,
            "config {} unbalanced: {counts:?}",
            config.num
        );
    }
}

/// Returns the servers of a test group: two made-up addresses.
pub fn servers(gid: u64) -> Vec<String> {
    vec![format!("g{gid}-a:1"), format!("g{gid}-b:1")]
}

/// Returns a Join argument for `gids`.
pub fn groups(gids: &[u64]) -> BTreeMap<u64, Vec<String>> {
    gids.iter().map(|gid| (*gid, servers(*gid))).collect()
}
