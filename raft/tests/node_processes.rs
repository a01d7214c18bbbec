//! Raft nodes as separate OS processes (`raft-node`), killed with SIGKILL:
//! every write acknowledged before the kill must be readable after the
//! group restarts from its data dirs.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use proto::kv::v1::shard_kv_client::ShardKvClient;
use proto::kv::v1::{GetRequest, PutRequest, Status as KvStatus};
use raft::observability::http_get;

const DEADLINE: Duration = Duration::from_secs(30);

/// Returns `count` free loopback ports.
fn free_ports(count: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("address").port())
        .collect()
}

struct Processes {
    grpc: Vec<String>,
    http: Vec<String>,
    children: Vec<Option<Child>>,
}

impl Processes {
    fn new() -> Processes {
        let ports = free_ports(6);
        Processes {
            grpc: ports[..3]
                .iter()
                .map(|p| format!("127.0.0.1:{p}"))
                .collect(),
            http: ports[3..]
                .iter()
                .map(|p| format!("127.0.0.1:{p}"))
                .collect(),
            children: vec![None, None, None],
        }
    }

    fn start(&mut self, index: usize, dir: &Path) {
        let peers: Vec<String> = self
            .grpc
            .iter()
            .enumerate()
            .map(|(i, a)| format!("{}={a}", i + 1))
            .collect();
        let child = Command::new(env!("CARGO_BIN_EXE_raft-node"))
            .args([
                "--id",
                &(index + 1).to_string(),
                "--listen",
                &self.grpc[index],
                "--http",
                &self.http[index],
            ])
            .args(["--peers", &peers.join(","), "--tick-ms", "20"])
            .arg("--data-dir")
            .arg(dir.join(format!("node-{}", index + 1)))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("raft-node starts");
        self.children[index] = Some(child);
    }

    /// Starts all three processes on their data dirs under `dir`.
    fn start_all(&mut self, dir: &Path) {
        for index in 0..3 {
            self.start(index, dir);
        }
    }

    /// Sends SIGTERM and returns the exit status (at most `DEADLINE`).
    fn terminate(&mut self, index: usize) -> std::process::ExitStatus {
        let mut child = self.children[index].take().expect("process running");
        raft::termination::terminate_and_wait(&mut child, DEADLINE).expect("exits on SIGTERM")
    }

    /// Sends SIGKILL (no chance to flush or shut down) and reaps.
    fn kill(&mut self, index: usize) {
        if let Some(mut child) = self.children[index].take() {
            child.kill().expect("SIGKILL");
            child.wait().expect("reaped");
        }
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        for index in 0..3 {
            self.kill(index);
        }
    }
}

/// Puts through whichever replica leads, retrying until `DEADLINE`.
async fn put(grpc: &[String], key: &str, value: &str) {
    let started = Instant::now();
    loop {
        for address in grpc {
            let Ok(mut client) = ShardKvClient::connect(format!("http://{address}")).await else {
                continue;
            };
            let request = PutRequest {
                key: Bytes::from(key.to_string()),
                value: Bytes::from(value.to_string()),
                client_id: 0,
                seq: 0,
            };
            if let Ok(reply) = client.put(request).await
                && reply.get_ref().status == KvStatus::Ok as i32
            {
                return;
            }
        }
        assert!(
            started.elapsed() < DEADLINE,
            "put {key} not acknowledged within {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Reads `key` linearizably through whichever replica leads.
async fn get(grpc: &[String], key: &str) -> Option<String> {
    let started = Instant::now();
    loop {
        for address in grpc {
            let Ok(mut client) = ShardKvClient::connect(format!("http://{address}")).await else {
                continue;
            };
            let request = GetRequest {
                key: Bytes::from(key.to_string()),
            };
            if let Ok(reply) = client.get(request).await
                && reply.get_ref().status == KvStatus::Ok as i32
            {
                let reply = reply.into_inner();
                return reply
                    .found
                    .then(|| String::from_utf8(reply.value.to_vec()).expect("utf-8"));
            }
        }
        assert!(
            started.elapsed() < DEADLINE,
            "get {key} not answered within {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Puts `k0..k{count}` with values `v0..`, each acknowledged.
async fn put_numbered(grpc: &[String], count: usize) {
    for i in 0..count {
        put(grpc, &format!("k{i}"), &format!("v{i}")).await;
    }
}

/// Asserts that every key [`put_numbered`] wrote reads back its value.
async fn assert_numbered(grpc: &[String], count: usize) {
    for i in 0..count {
        assert_eq!(
            get(grpc, &format!("k{i}")).await.as_deref(),
            Some(format!("v{i}").as_str())
        );
    }
}

// Goal: SIGKILL of every process loses no acknowledged write. Method:
// three raft-node processes, 100 acknowledged puts, SIGKILL all three,
// restart them on the same data dirs, read every key through the leader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill_of_every_process() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut processes = Processes::new();
    processes.start_all(dir.path());
    put_numbered(&processes.grpc, 100).await;
    for index in 0..3 {
        processes.kill(index);
    }
    processes.start_all(dir.path());
    assert_numbered(&processes.grpc, 100).await;
}

// Goal: SIGTERM (docker stop, Ctrl-C) stops a process cleanly: exit status
// 0, its database closed (RocksDB logs "Shutdown complete"), and a restart
// on the same data dir has every acknowledged write.
// Method: 50 acknowledged puts, SIGTERM each process in turn, restart all,
// read every key through the leader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_each_process_cleanly_and_loses_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut processes = Processes::new();
    processes.start_all(dir.path());
    put_numbered(&processes.grpc, 50).await;
    for index in 0..3 {
        let status = processes.terminate(index);
        assert!(status.success(), "node {} exited with {status}", index + 1);
        let log = dir.path().join(format!("node-{}", index + 1)).join("LOG");
        let log = std::fs::read_to_string(&log).expect("RocksDB's LOG");
        assert!(
            log.contains("Shutdown complete"),
            "node {} exited without closing its database",
            index + 1
        );
    }
    processes.start_all(dir.path());
    assert_numbered(&processes.grpc, 50).await;
}

// Goal: killing the leader process mid-stream of writes loses none that
// were acknowledged. Method: write, SIGKILL one process at a time while
// writing continues, restart it, verify every acknowledged key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_continue_while_processes_are_killed_one_at_a_time() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut processes = Processes::new();
    processes.start_all(dir.path());
    let mut acknowledged = Vec::new();
    for round in 0..3 {
        for i in 0..20 {
            let key = format!("r{round}-{i}");
            put(&processes.grpc, &key, &key).await;
            acknowledged.push(key);
        }
        processes.kill(round);
        for i in 20..40 {
            let key = format!("r{round}-{i}");
            put(&processes.grpc, &key, &key).await;
            acknowledged.push(key);
        }
        processes.start(round, dir.path());
    }
    for key in &acknowledged {
        assert_eq!(
            get(&processes.grpc, key).await.as_deref(),
            Some(key.as_str())
        );
    }
}

/// Returns the value of the sample `name{labels}` in a Prometheus body.
fn sample(body: &str, name: &str, labels: &str) -> Option<f64> {
    body.lines()
        .filter(|line| line.starts_with(name) && line.contains(labels))
        .find(|line| line[name.len()..].starts_with('{'))
        .and_then(|line| line.rsplit(' ').next()?.parse().ok())
}

// Goal: each process serves its Raft metrics, labelled with its group and
// node, from the first write on (a recorder installed after the node
// registered its metrics once left them all unexported), and answers
// /healthz and /readyz. Method: three raft-node processes, 20 puts; on
// every process each NODE_METRICS name appears with group="1" and its own
// node label, fsyncs were counted, and the commit index covers the puts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_process_exports_labelled_raft_metrics() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut processes = Processes::new();
    processes.start_all(dir.path());
    for i in 0..20 {
        put(&processes.grpc, &format!("m{i}"), "v").await;
    }
    for (index, address) in processes.http.iter().enumerate() {
        let labels = format!("group=\"1\",node=\"{}\"", index + 1);
        let started = Instant::now();
        // A follower learns the last commit index with the next heartbeat.
        loop {
            let body = http_get(address, "/metrics", DEADLINE).expect("GET /metrics");
            let commit = sample(&body, raft::metrics::RAFT_COMMIT_INDEX, &labels);
            if commit.is_some_and(|commit| commit >= 21.0) {
                for name in raft::metrics::NODE_METRICS {
                    assert!(
                        body.lines()
                            .any(|line| line.starts_with(name) && line.contains(&labels)),
                        "{name} with {labels} missing from /metrics of node {}:\n{body}",
                        index + 1
                    );
                }
                let fsyncs = sample(&body, "raft_fsync_duration_seconds_count", &labels);
                assert!(
                    fsyncs.is_some_and(|count| count > 0.0),
                    "no fsync counted on node {}:\n{body}",
                    index + 1
                );
                break;
            }
            assert!(
                started.elapsed() < DEADLINE,
                "node {} does not report commit index >= 21:\n{body}",
                index + 1
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for path in ["/healthz", "/readyz"] {
            let response = http_get(address, path, DEADLINE).expect("GET");
            assert!(response.starts_with("HTTP/1.0 200"), "{path}: {response}");
        }
    }
}
