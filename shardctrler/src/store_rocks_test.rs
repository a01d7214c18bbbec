//! Tests of [`ControllerStore`] over a real RocksDB in a temp dir: what is
//! applied survives a reopen, and a snapshot restores an equal state.

use std::collections::BTreeMap;

use bytes::Bytes;
use raft::core::{Entry, EntryKind, LogIndex, Term};
use raft::driver::StateMachine;
use raft::storage::RocksStorage;

use super::*;
use crate::command::Command;
use crate::types::{ConfigNum, GroupId, ShardId};

fn open(dir: &std::path::Path) -> ControllerStore {
    let storage = RocksStorage::open(dir).expect("open RocksDB");
    ControllerStore::open(storage.db(), 10, 1).expect("open the controller store")
}

fn entry(index: u64, request: &Request) -> Entry {
    Entry {
        term: Term(1),
        index: LogIndex(index),
        kind: EntryKind::Normal,
        data: Bytes::from(request.encode()),
    }
}

fn join(client_id: u64, seq: u64, gid: u64) -> Request {
    let groups = BTreeMap::from([(GroupId(gid), vec![format!("g{gid}:1")])]);
    Request {
        client_id,
        seq,
        timestamp_ms: 0,
        command: Command::Join { groups },
    }
}

/// Applies joins of gids 1..=3, a refused move and an empty entry.
fn apply_sample(store: &mut ControllerStore) {
    for gid in 1..=3 {
        let output = store.apply(&entry(gid, &join(7, gid, gid)));
        assert_eq!(
            output.map(|reply| reply.map(|c| c.num)),
            Some(Ok(ConfigNum(gid)))
        );
    }
    let refused = Request {
        client_id: 8,
        seq: 1,
        timestamp_ms: 0,
        command: Command::Move {
            shard: ShardId(99),
            gid: GroupId(1),
        },
    };
    assert!(matches!(store.apply(&entry(4, &refused)), Some(Err(_))));
    let empty = Entry {
        data: Bytes::new(),
        ..entry(5, &refused)
    };
    assert_eq!(store.apply(&empty), None);
}

// Goal: every applied entry's effects and the applied index survive a
// reopen together (DESIGN.md "Storage layout"). Method: apply, drop the
// store and the database, reopen, compare.
#[test]
fn applied_state_and_index_survive_a_reopen() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut store = open(dir.path());
    assert_eq!(store.applied_index(), LogIndex(0));
    apply_sample(&mut store);
    let before = store.shared().read(Clone::clone);
    drop(store);
    let reopened = open(dir.path());
    assert_eq!(reopened.applied_index(), LogIndex(5));
    assert_eq!(reopened.shared().read(Clone::clone), before);
    assert_eq!(before.latest().num, ConfigNum(3));
    assert_eq!(before.session_count(), 2);
}

// Goal: a snapshot restores an equal state on a replica that had another
// one, and the restored state is durable. Method: snapshot a store,
// restore it into a store with different history, reopen that.
#[test]
fn a_snapshot_restores_an_equal_durable_state() {
    let source_dir = tempfile::tempdir().expect("temp dir");
    let mut source = open(source_dir.path());
    apply_sample(&mut source);
    let target_dir = tempfile::tempdir().expect("temp dir");
    let mut target = open(target_dir.path());
    target.apply(&entry(1, &join(9, 1, 42)));
    // Split the snapshot at odd places: a restore must not rely on the
    // boundaries of the chunks it was given.
    restore(&mut target, LogIndex(5), read_all(&source, 7));
    let expected = source.shared().read(Clone::clone);
    assert_eq!(target.shared().read(Clone::clone), expected);
    drop(target);
    let reopened = open(target_dir.path());
    assert_eq!(reopened.applied_index(), LogIndex(5));
    assert_eq!(reopened.shared().read(Clone::clone), expected);
}

// Goal: a used data dir keeps its shard count whatever the flag says.
#[test]
fn the_stored_shard_count_wins_over_the_option() {
    let dir = tempfile::tempdir().expect("temp dir");
    drop(open(dir.path()));
    let storage = RocksStorage::open(dir.path()).expect("open RocksDB");
    let store = ControllerStore::open(storage.db(), 64, 1).expect("reopen");
    assert_eq!(store.shared().read(ControllerState::shard_count), 10);
}

// Goal: the bootstrap snapshot (membership only, no data) restores the
// initial state, as the driver does on a freshly bootstrapped data dir.
#[test]
fn an_empty_snapshot_restores_the_initial_state() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut store = open(dir.path());
    restore(&mut store, LogIndex(1), vec![Bytes::new()]);
    assert_eq!(store.applied_index(), LogIndex(1));
    assert_eq!(store.shared().read(Clone::clone), ControllerState::new(10));
}

// Goal: a snapshot cut short does not decode, and the restore changes
// nothing stored but its mark: a reopen finds the previous state and the
// mark, so the node restores again instead of serving part of a snapshot.
#[test]
fn a_truncated_snapshot_is_refused_and_changes_nothing() {
    let source_dir = tempfile::tempdir().expect("temp dir");
    let mut source = open(source_dir.path());
    apply_sample(&mut source);
    let bytes: Vec<u8> = read_all(&source, 1 << 20).concat();
    let target_dir = tempfile::tempdir().expect("temp dir");
    let mut target = open(target_dir.path());
    target.apply(&entry(1, &join(9, 1, 42)));
    let before = target.shared().read(Clone::clone);
    target.begin_restore(LogIndex(5), Term(2)).expect("begin");
    let half = Bytes::copy_from_slice(&bytes[..bytes.len() / 2]);
    let error = target
        .finish_restore(LogIndex(5), half)
        .expect_err("cut short");
    assert!(
        matches!(
            error,
            StorageError::Corruption {
                index: LogIndex(5),
                ..
            }
        ),
        "{error}"
    );
    drop(target);
    let reopened = open(target_dir.path());
    assert_eq!(
        reopened.restoring().map(|point| (point.index, point.term)),
        Some((LogIndex(5), Term(2))),
        "marked as being restored"
    );
    assert_eq!(reopened.shared().read(Clone::clone), before);
}

/// Reads the whole snapshot of `store`, `bytes_max` at a time.
fn read_all(store: &ControllerStore, bytes_max: u64) -> Vec<Bytes> {
    let mut source = store.snapshot_source().expect("pin");
    let mut chunks = Vec::new();
    let mut cursor = Bytes::new();
    loop {
        let piece = source.read(&cursor, bytes_max).expect("read");
        chunks.push(piece.data);
        if piece.last {
            return chunks;
        }
        cursor = piece.next_cursor;
    }
}

/// Restores `store` from `chunks` (the last one finishing) as the driver
/// does.
fn restore(store: &mut ControllerStore, index: LogIndex, mut chunks: Vec<Bytes>) {
    let last = chunks.pop().expect("one chunk at least");
    store.begin_restore(index, Term(2)).expect("begin");
    for chunk in chunks {
        store.restore_chunk(chunk, Bytes::new()).expect("chunk");
    }
    store.finish_restore(index, last).expect("finish");
    assert_eq!(store.restoring(), None);
}

// Goal: a session that expires is deleted from RocksDB in the same write as
// the entry that expired it, so a reopened replica does not bring it back.
// Method: client 7 joins at time 0, client 8 at TTL + 1 ms; reopen.
#[test]
fn an_expired_session_stays_deleted_after_a_reopen() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut store = open(dir.path());
    store.apply(&entry(1, &join(7, 1, 1)));
    let late = Request {
        timestamp_ms: raft::session::SESSION_TTL_MS + 1,
        ..join(8, 1, 2)
    };
    store.apply(&entry(2, &late));
    let before = store.shared().read(Clone::clone);
    assert!(before.session(7).is_none(), "client 7's session expired");
    assert!(before.session(8).is_some());
    drop(store);
    let reopened = open(dir.path());
    assert_eq!(reopened.shared().read(Clone::clone), before);
}
