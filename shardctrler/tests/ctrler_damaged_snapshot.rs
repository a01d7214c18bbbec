//! A controller replica sent a snapshot it cannot restore (the leader's
//! data does not decode, its crc32 intact) exits with the snapshot-restore
//! code and a message naming the snapshot, on every start: its state stays
//! marked as being restored, so it never serves the bootstrap state, or
//! part of a snapshot, in place of the snapshot's configurations.

mod harness;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use bytes::Bytes;
use harness::{DEADLINE, free_ports};
use raft::core::{LogIndex, Membership, Message, MessageBody, NodeId, SnapshotMeta, Term};
use raft::driver::StateMachine;
use raft::storage::RocksStorage;
use raft::transport::{GrpcTransport, Transport};
use shardctrler::ControllerStore;

const SHARDS: u32 = 8;
const SNAPSHOT_INDEX: u64 = 10;

/// The only chunk of a snapshot at index 10 (term 3) from node 2 to node
/// 1, which does not decode as a controller state.
fn undecodable_snapshot() -> Message {
    let data = Bytes::from_static(b"not a controller state");
    Message {
        from: NodeId(2),
        to: NodeId(1),
        term: Term(5),
        body: MessageBody::SnapshotChunk {
            meta: SnapshotMeta {
                index: LogIndex(SNAPSHOT_INDEX),
                term: Term(3),
                membership: Membership::with_voters([NodeId(1), NodeId(2)]),
            },
            cursor: Bytes::new(),
            next_cursor: Bytes::new(),
            crc32: raft::core::chunk_crc32(&[], &[], &data, true),
            data,
            last: true,
        },
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

/// Starts `shardctrler` on `dir` as node 1 of a group whose node 2 is at
/// `fake` (the test), its stderr to `log`.
fn spawn_replica(dir: &Path, log: &Path, listen: &str, http: &str, fake: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_shardctrler"))
        .args(["--id", "1", "--listen", listen, "--http", http])
        .args(["--peers", &format!("1={listen},2={fake}")])
        .args(["--shards", &SHARDS.to_string(), "--tick-ms", "20"])
        .arg("--data-dir")
        .arg(dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("log file"))
        .spawn()
        .expect("shardctrler starts")
}

// Goal: a snapshot that does not decode is refused loudly, on every
// start, and leaves the state marked as being restored, its index never
// recorded as applied. Method: node 2 (the test, over the Raft gRPC transport) sends it
// until the replica exits; twice; then open its store directly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecodable_snapshot_stops_the_replica_on_every_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("ctrler-1");
    let log = dir.path().join("stderr");
    // All three at once: a port released and picked again would collide.
    let ports = free_ports(3);
    let (listen, fake, http) = (
        format!("127.0.0.1:{}", ports[0]),
        format!("127.0.0.1:{}", ports[1]),
        format!("127.0.0.1:{}", ports[2]),
    );
    for attempt in 1..=2 {
        let mut child = KillOnDrop(spawn_replica(&data, &log, &listen, &http, &fake));
        let peers = std::collections::BTreeMap::from([(NodeId(1), listen.clone())]);
        let leader = GrpcTransport::new(shardctrler::server::CONTROLLER_GROUP, NodeId(2), peers);
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.0.try_wait().expect("child status") {
                break status;
            }
            assert!(
                started.elapsed() < DEADLINE,
                "start {attempt}: still running"
            );
            leader.send(vec![undecodable_snapshot()]);
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        };
        let logged = std::fs::read_to_string(&log).expect("read the log");
        assert_eq!(
            status.code(),
            Some(i32::from(raft::exit_code::SNAPSHOT_RESTORE)),
            "start {attempt}:\n{logged}"
        );
        assert!(
            logged.contains(
                "cannot restore the snapshot at index 10 (term 3) at position the beginning"
            ),
            "start {attempt}:\n{logged}"
        );
    }
    let storage = RocksStorage::open(&data).expect("open");
    let store = ControllerStore::open(storage.db(), SHARDS, 1).expect("store");
    assert!(
        store.applied_index() < LogIndex(SNAPSHOT_INDEX),
        "the snapshot's index was never recorded as applied"
    );
    assert!(
        store.restoring().is_some(),
        "still marked as being restored"
    );
}
