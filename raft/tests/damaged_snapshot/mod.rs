//! A data dir as a follower leaves it when it stopped after storing a
//! snapshot its leader sent and before restoring the register map from it
//! (the map still at applied index 0), with the snapshot's data then
//! damaged on disk: one chunk record flipped (a crc mismatch) or the last
//! one missing (a stream cut short). Shared by the in-process and the
//! process tests of a restore that must fail loudly.

#![allow(
    dead_code,
    reason = "each test file uses its own subset of these helpers"
)]

use std::path::Path;

use bytes::Bytes;
use raft::core::{Entry, EntryKind, HardState, LogIndex, Membership, NodeId, StorageError, Term};
use raft::driver::StateMachine;
use raft::register::{RegisterCommand, RegisterMachine};
use raft::storage::{CF_RAFT_STATE, PersistBatch, RocksStorage, Storage};

/// The index of the damaged snapshot.
pub const SNAPSHOT_INDEX: LogIndex = LogIndex(10);
/// The term of the damaged snapshot.
pub const SNAPSHOT_TERM: Term = Term(2);
/// Keys in the snapshot: 4 values of 1 MiB, so the data spans several
/// chunk records.
pub const KEYS: u64 = 4;
const VALUE_BYTES: usize = 1 << 20;

/// A stored (key, value) record.
type Record = (Box<[u8]>, Box<[u8]>);

/// How the snapshot's data is damaged.
#[derive(Clone, Copy, Debug)]
pub enum Damage {
    /// Nothing damaged: the control case, which restores.
    None,
    /// A byte of the second chunk record flipped: its crc32 fails.
    FlippedByte,
    /// The last chunk record deleted: the data ends before its size.
    MissingLastChunk,
}

/// Prepares `dir` as described in the module doc for a group of `voters`
/// and returns how many bytes of the data a restore reads before it meets
/// the damage (with no damage: about the size of the data, framing
/// included).
pub fn prepare(dir: &Path, voters: &[u64], damage: Damage) -> u64 {
    let membership = Membership::with_voters(voters.iter().copied().map(NodeId));
    let chunks = register_map_chunks();
    let mut storage = RocksStorage::open(dir).expect("open the data dir");
    storage.bootstrap(membership.clone()).expect("bootstrap");
    let entries: Vec<Entry> = (2..=SNAPSHOT_INDEX.0)
        .map(|index| Entry {
            term: SNAPSHOT_TERM,
            index: LogIndex(index),
            kind: EntryKind::Normal,
            data: Bytes::new(),
        })
        .collect();
    let hard_state = HardState {
        term: SNAPSHOT_TERM,
        vote: None,
        commit: SNAPSHOT_INDEX,
    };
    storage
        .persist(&PersistBatch {
            hard_state: Some(&hard_state),
            entries: &entries,
            ..PersistBatch::default()
        })
        .expect("append");
    storage
        .create_snapshot(SNAPSHOT_INDEX, membership, chunks)
        .expect("snapshot");
    let pieces: Vec<u64> = storage
        .snapshot_data()
        .expect("snapshot data")
        .map(|piece| piece.expect("readable").len() as u64)
        .collect();
    let db = storage.db();
    let state = db.cf_handle(CF_RAFT_STATE).expect("raft_state");
    let records: Vec<Record> = db
        .prefix_iterator_cf(state, "snapshot_chunk/")
        .map(|record| record.expect("readable"))
        .filter(|(key, _)| key.starts_with(b"snapshot_chunk/"))
        .collect();
    assert!(records.len() >= 3, "the data spans several records");
    assert_eq!(records.len(), pieces.len(), "one piece per record");
    match damage {
        Damage::None => pieces.iter().sum(),
        Damage::FlippedByte => {
            let (key, value) = &records[1];
            let mut value = value.to_vec();
            let last = value.len() - 1;
            value[last] ^= 0x01;
            db.put_cf(state, key, value).expect("write");
            pieces[0]
        }
        Damage::MissingLastChunk => {
            let (key, _) = records.last().expect("records");
            db.delete_cf(state, key).expect("delete");
            pieces[..pieces.len() - 1].iter().sum()
        }
    }
}

/// Returns the chunks of a register map of [`KEYS`] values of 1 MiB, as
/// the map itself cuts them.
fn register_map_chunks() -> Vec<Bytes> {
    let scratch = tempfile::tempdir().expect("temp dir");
    let storage = RocksStorage::open(scratch.path()).expect("open scratch");
    let mut machine = RegisterMachine::open(storage.db()).expect("register map");
    for key in 0..KEYS {
        let command = RegisterCommand::Put {
            key: Bytes::from(format!("key-{key}")),
            value: Bytes::from(vec![key as u8; VALUE_BYTES]),
        };
        machine.apply(&Entry {
            term: Term(1),
            index: LogIndex(key + 1),
            kind: EntryKind::Normal,
            data: command.encode(),
        });
    }
    machine.snapshot().collect()
}

/// Asserts that `error` is the refusal to restore the damaged snapshot,
/// naming it and the byte the restore reached.
pub fn assert_refused(error: &StorageError, position: u64) {
    match error {
        StorageError::SnapshotRestore {
            index,
            term,
            position: reached,
            ..
        } => {
            assert_eq!(
                (*index, *term, *reached),
                (SNAPSHOT_INDEX, SNAPSHOT_TERM, position),
                "{error}"
            );
        }
        other => panic!("expected a refused restore, got {other}"),
    }
}

/// Returns the applied index the register map in `dir` resumes from.
pub fn applied_index(dir: &Path) -> LogIndex {
    let storage = RocksStorage::open(dir).expect("open the data dir");
    RegisterMachine::open(storage.db())
        .expect("register map")
        .applied_index()
}
