//! A data dir as a follower leaves it when it stopped in the middle of
//! restoring a snapshot its leader streamed (the transfer cut short): the
//! log compacted below the snapshot, the register map's old state dropped
//! and part of the snapshot written, behind the restore mark. And a
//! snapshot chunk the register map cannot decode (its crc32 intact: the
//! leader's own data is bad). Shared by the in-process and the process
//! tests of restores that must never serve part of a snapshot.

#![allow(
    dead_code,
    reason = "each test file uses its own subset of these helpers"
)]

use std::path::Path;

use bytes::{BufMut, Bytes, BytesMut};
use raft::core::{
    Entry, EntryKind, HardState, LogIndex, Membership, Message, MessageBody, NodeId, RestorePoint,
    SnapshotMeta, StorageError, Term,
};
use raft::driver::StateMachine;
use raft::storage::{PersistBatch, RocksStorage, Storage};
use raft_demo::register::RegisterMachine;

/// The index of the snapshot being restored.
pub const SNAPSHOT_INDEX: LogIndex = LogIndex(20);
/// The term of the snapshot being restored.
pub const SNAPSHOT_TERM: Term = Term(3);
/// The position the interrupted restore resumes at.
pub const RESUME_AT: &[u8] = b"\0key-1\0";

/// One register-map snapshot record: column family 0, key, value.
fn record(key: &[u8], value: &[u8]) -> Bytes {
    let mut record = BytesMut::new();
    record.put_u8(0);
    record.put_u32(key.len() as u32);
    record.put_slice(key);
    record.put_u32(value.len() as u32);
    record.put_slice(value);
    record.freeze()
}

/// Prepares `dir` for a group of `voters` as described in the module doc:
/// log entries 2..=10 of term 2, compacted up to 10, and the register map
/// restoring the snapshot at [`SNAPSHOT_INDEX`] with `key-0` and `key-1`
/// written, to resume at [`RESUME_AT`].
pub fn prepare_interrupted(dir: &Path, voters: &[u64]) {
    let membership = Membership::with_voters(voters.iter().copied().map(NodeId));
    let mut storage = RocksStorage::open(dir).expect("open the data dir");
    storage.bootstrap(membership.clone()).expect("bootstrap");
    let entries: Vec<Entry> = (2..=10)
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
        commit: LogIndex(10),
    };
    storage
        .persist(&PersistBatch {
            hard_state: Some(&hard_state),
            entries: &entries,
            ..PersistBatch::default()
        })
        .expect("append");
    storage.compact(LogIndex(10), membership).expect("compact");
    let mut machine = RegisterMachine::open(storage.db()).expect("register map");
    machine
        .begin_restore(SNAPSHOT_INDEX, SNAPSHOT_TERM)
        .expect("begin");
    let mut data = BytesMut::new();
    data.put_slice(&record(b"key-0", b"v0"));
    data.put_slice(&record(b"key-1", b"v1"));
    machine
        .restore_chunk(data.freeze(), Bytes::from_static(RESUME_AT))
        .expect("chunk");
}

/// Returns the restore the register map in `dir` is marked with, if any.
pub fn restoring(dir: &Path) -> Option<RestorePoint> {
    let storage = RocksStorage::open(dir).expect("open the data dir");
    RegisterMachine::open(storage.db())
        .expect("register map")
        .restoring()
}

/// Returns the first chunk of a snapshot at [`SNAPSHOT_INDEX`] from leader
/// `from` (in `term`) to `to`, whose data the register map cannot decode
/// although its crc32 is right: a record announcing more bytes than follow.
pub fn undecodable_chunk(from: NodeId, to: NodeId, term: Term, voters: &[u64]) -> Message {
    let mut data = BytesMut::from(&record(b"key-0", b"v0")[..]);
    data.put_u8(0);
    data.put_u32(1 << 20);
    data.put_slice(b"cut");
    let data = data.freeze();
    let next_cursor = Bytes::from_static(b"\0key-9\0");
    Message {
        from,
        to,
        term,
        body: MessageBody::SnapshotChunk {
            meta: SnapshotMeta {
                index: SNAPSHOT_INDEX,
                term: SNAPSHOT_TERM,
                membership: Membership::with_voters(voters.iter().copied().map(NodeId)),
            },
            cursor: Bytes::new(),
            crc32: raft::core::chunk_crc32(&[], &next_cursor, &data, false),
            next_cursor,
            data,
            last: false,
        },
    }
}

/// Asserts that `error` is the refusal to restore the undecodable chunk,
/// naming the snapshot and the chunk's position.
pub fn assert_refused(error: &StorageError) {
    match error {
        StorageError::SnapshotRestore {
            index,
            term,
            position,
            detail,
        } => {
            assert_eq!((*index, *term), (SNAPSHOT_INDEX, SNAPSHOT_TERM), "{error}");
            assert_eq!(position, "the beginning", "{error}");
            assert!(detail.contains("cut short"), "{error}");
        }
        other => panic!("expected a refused restore, got {other}"),
    }
}
