//! Raft nodes as separate OS processes (`raft-node`), killed with SIGKILL:
//! every write acknowledged before the kill must be readable after the
//! group restarts from its data dirs; a replica sent a snapshot chunk it
//! cannot restore exits with its own code on every start, and one stopped
//! mid-restore refuses reads, instead of serving part of a snapshot.

mod damaged_snapshot;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use proto::kv::v1::shard_kv_client::ShardKvClient;
use proto::kv::v1::{GetRequest, PutRequest, Status as KvStatus};
use raft::observability::http_get;
use test_ports::free_ports;

const DEADLINE: Duration = Duration::from_secs(30);

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

    /// Sends `signal` (a name `kill` knows: STOP, CONT) to process `index`.
    fn signal(&self, index: usize, signal: &str) {
        let pid = self.children[index].as_ref().expect("process running").id();
        let sent = Command::new("sh")
            .args(["-c", &format!("kill -{signal} {pid}")])
            .status()
            .expect("sh runs");
        assert!(sent.success(), "kill -{signal} {pid}: {sent}");
    }

    /// Returns the peak resident memory of process `index`, in bytes.
    fn peak_rss_bytes(&self, index: usize) -> u64 {
        let pid = self.children[index].as_ref().expect("process running").id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
        let kib: u64 = status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM in /proc/<pid>/status");
        kib * 1024
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

/// A child process killed when dropped, so a failing test leaves no
/// server running.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `raft-node` as node 1 of a group of `voters` (the others at
/// `others`, which the test speaks for) on `dir`, its stderr to `log`.
fn spawn_replica(
    dir: &Path,
    log: &Path,
    (listen, http): (&str, &str),
    others: &[(u64, String)],
) -> Child {
    let mut peers = vec![format!("1={listen}")];
    peers.extend(others.iter().map(|(id, address)| format!("{id}={address}")));
    Command::new(env!("CARGO_BIN_EXE_raft-node"))
        .args(["--id", "1", "--listen", listen, "--http", http])
        .args(["--peers", &peers.join(","), "--tick-ms", "20"])
        .arg("--data-dir")
        .arg(dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("log file"))
        .spawn()
        .expect("raft-node starts")
}

/// Asks the replica at `address` for `key` until it answers (at most
/// `DEADLINE`) and returns its answer, or the gRPC code of its refusal.
async fn get_reply(address: &str, key: &str) -> Result<proto::kv::v1::GetReply, tonic::Code> {
    let started = Instant::now();
    loop {
        if let Ok(mut client) = ShardKvClient::connect(format!("http://{address}")).await {
            let request = GetRequest {
                key: Bytes::from(key.to_string()),
            };
            return client
                .get(request)
                .await
                .map(tonic::Response::into_inner)
                .map_err(|status| status.code());
        }
        assert!(started.elapsed() < DEADLINE, "{address} never answered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// Goal: a replica stopped in the middle of a restore (the transfer cut
// short) never serves the partial map, on any start. Method: a data dir
// left as by such a follower; start raft-node on it as its group's only
// replica, read; twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_stopped_mid_restore_refuses_reads_on_every_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("node-1");
    damaged_snapshot::prepare_interrupted(&data, &[1]);
    for attempt in 1..=2 {
        // Both at once: a port released and picked again would collide.
        let ports = free_ports(2);
        let (listen, http) = (
            format!("127.0.0.1:{}", ports[0]),
            format!("127.0.0.1:{}", ports[1]),
        );
        let child = KillOnDrop(spawn_replica(
            &data,
            &dir.path().join("stderr"),
            (&listen, &http),
            &[],
        ));
        let reply = get_reply(&listen, "key-0").await;
        drop(child);
        // Never elected (it does not campaign while restoring), it answers
        // WRONG_LEADER; were it asked through a leader, UNAVAILABLE.
        assert!(
            reply
                .as_ref()
                .is_ok_and(|reply| reply.status != KvStatus::Ok as i32 && !reply.found)
                || reply == Err(tonic::Code::Unavailable),
            "start {attempt}: the partial map was served: {reply:?}"
        );
        assert!(
            damaged_snapshot::restoring(&data).is_some(),
            "start {attempt}"
        );
    }
}

// Goal: a chunk the register map cannot decode stops the process with the
// snapshot-restore exit code and a message naming the snapshot and the
// position, on every start: it never serves part of the snapshot. Method:
// raft-node as node 1 of a 2-node group whose node 2 (the test, over the
// Raft gRPC transport) sends it such a chunk until it exits; twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecodable_chunk_stops_the_process_on_every_start() {
    use raft::core::{NodeId, Term};
    use raft::transport::Transport;
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("node-1");
    let log = dir.path().join("stderr");
    // All three at once: a port released and picked again would collide.
    let ports = free_ports(3);
    let (listen, fake, http) = (
        format!("127.0.0.1:{}", ports[0]),
        format!("127.0.0.1:{}", ports[1]),
        format!("127.0.0.1:{}", ports[2]),
    );
    for attempt in 1..=2 {
        let mut child = KillOnDrop(spawn_replica(
            &data,
            &log,
            (&listen, &http),
            &[(2, fake.clone())],
        ));
        let peers = std::collections::BTreeMap::from([(NodeId(1), listen.clone())]);
        let leader = raft::transport::GrpcTransport::new(1, NodeId(2), peers);
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.0.try_wait().expect("child status") {
                break status;
            }
            assert!(
                started.elapsed() < DEADLINE,
                "start {attempt}: still running"
            );
            let chunk = damaged_snapshot::undecodable_chunk(NodeId(2), NodeId(1), Term(5), &[1, 2]);
            leader.send(vec![chunk]);
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let logged = std::fs::read_to_string(&log).expect("read the log");
        assert_eq!(
            status.code(),
            Some(i32::from(raft::exit_code::SNAPSHOT_RESTORE)),
            "start {attempt}:\n{logged}"
        );
        let named = "cannot restore the snapshot at index 20 (term 3) at position the beginning";
        assert!(logged.contains(named), "start {attempt}:\n{logged}");
        assert!(
            damaged_snapshot::restoring(&data).is_some(),
            "start {attempt}"
        );
    }
}

/// Writes `count` values of `value_bytes` under keys `big-<n>` from
/// `writers` concurrent clients, each write retried through every replica
/// until acknowledged (at most `DEADLINE` each).
async fn put_large_values(grpc: &[String], writers: usize, count: usize, value_bytes: usize) {
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let value = Bytes::from(vec![0x5a; value_bytes]);
    let mut tasks = Vec::new();
    for _ in 0..writers {
        let (next, value, grpc) = (next.clone(), value.clone(), grpc.to_vec());
        tasks.push(tokio::spawn(async move {
            let mut clients = Vec::new();
            for address in &grpc {
                let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
                    .expect("endpoint")
                    .connect_lazy();
                clients.push(ShardKvClient::new(channel));
            }
            loop {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if n >= count {
                    return;
                }
                let started = Instant::now();
                'acknowledged: loop {
                    for client in &mut clients {
                        let request = PutRequest {
                            key: Bytes::from(format!("big-{n}")),
                            value: value.clone(),
                            client_id: 0,
                            seq: 0,
                        };
                        if let Ok(reply) = client.put(request).await
                            && reply.get_ref().status == KvStatus::Ok as i32
                        {
                            break 'acknowledged;
                        }
                    }
                    assert!(started.elapsed() < DEADLINE, "big-{n} not acknowledged");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }));
    }
    for task in tasks {
        task.await.expect("writer");
    }
}

/// The peak resident memory each replica must stay under while 32 clients
/// write 1 MiB values and a follower stalls (docs/raft.md "Memory
/// budgets": proposals queued and in flight 64 + 64 MiB, peer queues
/// 2 x 32 MiB or an inbound queue of 64 MiB, memtables 128 MiB, gRPC
/// buffers and RocksDB's own about 100 MiB). Measured: at most 414 MiB
/// with the budgets, 811 MiB without them (count bounds only).
const PEAK_RSS_BYTES_MAX: u64 = 640 << 20;

// Goal: memory is bounded in bytes, not only in counts: 1 MiB values from
// many clients, with one replica stopped (SIGSTOP, so its peers' queues to
// it fill) and then resumed (so it receives a flood), keep every process
// under a fixed peak RSS. Method: three raft-node processes; stop one;
// 32 writers put 320 values of 1 MiB; resume it; put 96 more; wait until
// the resumed replica applied them; read each process's VmHWM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_mib_values_keep_every_process_under_its_memory_bound() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut processes = Processes::new();
    processes.start_all(dir.path());
    put(&processes.grpc, "warm-up", "1").await;
    processes.signal(2, "STOP");
    put_large_values(&processes.grpc[..2], 32, 320, 1 << 20).await;
    processes.signal(2, "CONT");
    put_large_values(&processes.grpc, 32, 96, 1 << 20).await;
    put(&processes.grpc, "last", "1").await;
    let started = Instant::now();
    let labels = "node=\"3\"";
    loop {
        let body = http_get(&processes.http[2], "/metrics", DEADLINE).expect("GET /metrics");
        let applied = sample(&body, "raft_applied_index", labels).unwrap_or(0.0);
        let leader_commit = (0..2)
            .filter_map(|index| {
                let body = http_get(&processes.http[index], "/metrics", DEADLINE).ok()?;
                sample(
                    &body,
                    "raft_commit_index",
                    &format!("node=\"{}\"", index + 1),
                )
            })
            .fold(0.0, f64::max);
        if applied >= leader_commit && applied > 0.0 {
            break;
        }
        assert!(
            started.elapsed() < 4 * DEADLINE,
            "the resumed replica applied {applied}, the others committed {leader_commit}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for index in 0..3 {
        let peak = processes.peak_rss_bytes(index);
        eprintln!("replica {}: peak RSS {} MiB", index + 1, peak >> 20);
        assert!(
            peak < PEAK_RSS_BYTES_MAX,
            "replica {} peaked at {} MiB, over {} MiB",
            index + 1,
            peak >> 20,
            PEAK_RSS_BYTES_MAX >> 20
        );
    }
}
