//! A controller replica whose stored snapshot cannot be restored (its
//! chunk fails the crc32, or the chunk is missing) exits with the
//! snapshot-restore code and a message naming the snapshot, on every
//! start: it never serves the bootstrap state, or part of a snapshot, in
//! place of the snapshot's configurations.

mod harness;

use std::path::Path;
use std::process::{Command, Stdio};

use bytes::Bytes;
use harness::{DEADLINE, free_ports};
use raft::core::{Entry, EntryKind, HardState, LogIndex, Membership, NodeId, Term};
use raft::driver::StateMachine;
use raft::storage::{CF_RAFT_STATE, PersistBatch, RocksStorage, Storage};
use shardctrler::{Command as CtrlCommand, ControllerState, ControllerStore, GroupId, Request};

const SHARDS: u32 = 8;
const SNAPSHOT_INDEX: u64 = 10;

/// How the snapshot's one chunk record is damaged.
#[derive(Clone, Copy, Debug)]
enum Damage {
    FlippedByte,
    Missing,
}

/// Leaves `dir` as a controller replica that stored a snapshot (at index
/// 10, term 2: a group joined) and stopped before restoring it, then
/// damages the snapshot's data.
fn prepare(dir: &Path, damage: Damage) {
    let mut state = ControllerState::new(SHARDS);
    state
        .apply(Request {
            client_id: 1,
            seq: 1,
            command: CtrlCommand::Join {
                groups: [(GroupId(1), vec!["127.0.0.1:8101".to_string()])].into(),
            },
        })
        .expect("join");
    let membership = Membership::with_voters([NodeId(1)]);
    let mut storage = RocksStorage::open(dir).expect("open the data dir");
    storage.bootstrap(membership.clone()).expect("bootstrap");
    let entries: Vec<Entry> = (2..=SNAPSHOT_INDEX)
        .map(|index| Entry {
            term: Term(2),
            index: LogIndex(index),
            kind: EntryKind::Normal,
            data: Bytes::new(),
        })
        .collect();
    let hard_state = HardState {
        term: Term(2),
        vote: None,
        commit: LogIndex(SNAPSHOT_INDEX),
    };
    storage
        .persist(&PersistBatch {
            hard_state: Some(&hard_state),
            entries: &entries,
            ..PersistBatch::default()
        })
        .expect("append");
    let encoded = Bytes::from(state.encode_snapshot());
    storage
        .create_snapshot(LogIndex(SNAPSHOT_INDEX), membership, [encoded])
        .expect("snapshot");
    let db = storage.db();
    let raft_state = db.cf_handle(CF_RAFT_STATE).expect("raft_state");
    let (key, value) = db
        .prefix_iterator_cf(raft_state, "snapshot_chunk/")
        .next()
        .expect("a chunk record")
        .expect("readable");
    match damage {
        Damage::FlippedByte => {
            let mut value = value.to_vec();
            let last = value.len() - 1;
            value[last] ^= 0x01;
            db.put_cf(raft_state, key, value).expect("write");
        }
        Damage::Missing => db.delete_cf(raft_state, key).expect("delete"),
    }
}

/// Runs `shardctrler` on `dir` as the only replica of its group until it
/// exits by itself (at most `DEADLINE`); returns its exit code and log.
fn run_until_exit(dir: &Path, log: &Path) -> (Option<i32>, String) {
    let ports = free_ports(2);
    let listen = format!("127.0.0.1:{}", ports[0]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_shardctrler"))
        .args(["--id", "1", "--listen", &listen])
        .args(["--http", &format!("127.0.0.1:{}", ports[1])])
        .args(["--peers", &format!("1={listen}")])
        .args(["--shards", &SHARDS.to_string(), "--tick-ms", "20"])
        .arg("--data-dir")
        .arg(dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("log file"))
        .spawn()
        .expect("shardctrler starts");
    let status = raft::termination::wait_or_kill(&mut child, DEADLINE).unwrap_or_else(|error| {
        panic!(
            "shardctrler did not stop by itself on a damaged snapshot ({error}):\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        )
    });
    (
        status.code(),
        std::fs::read_to_string(log).expect("read the log"),
    )
}

// Goal: a damaged snapshot is refused loudly, on every start, and leaves
// no applied index. Method: for each damage, start the replica twice on
// the prepared data dir; then open its store directly.
#[test]
fn a_damaged_snapshot_stops_the_replica_on_every_start() {
    for damage in [Damage::FlippedByte, Damage::Missing] {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("ctrler-1");
        prepare(&data, damage);
        for attempt in 1..=2 {
            let (code, log) = run_until_exit(&data, &dir.path().join("stderr"));
            assert_eq!(
                code,
                Some(i32::from(raft::exit_code::SNAPSHOT_RESTORE)),
                "{damage:?}, start {attempt}:\n{log}"
            );
            assert!(
                log.contains("cannot restore the snapshot at index 10 (term 2) at byte 0"),
                "{damage:?}, start {attempt}:\n{log}"
            );
        }
        let storage = RocksStorage::open(&data).expect("open");
        let store = ControllerStore::open(storage.db(), SHARDS, 1).expect("store");
        assert_eq!(store.applied_index(), LogIndex(0), "{damage:?}");
    }
}
