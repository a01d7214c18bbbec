//! Conformance suite of the [`Storage`] trait (STYLE.md A, after TiKV's
//! `engine_traits_tests`): one generic set of tests, each run against
//! [`MemStorage`] and [`RocksStorage`] (in a temporary directory), so both
//! keep the trait's `# Correctness` contract the same way. Then the tests
//! of what only the RocksDB storage promises: a reopen reads everything
//! back, a damaged record is reported as corruption naming its index, and
//! `persist` is atomic and durable.

use bytes::Bytes;
use raft::core::{
    Entry, EntryKind, HardState, LogIndex, Membership, NodeId, SnapshotChunk, SnapshotMeta,
    StorageError, Term,
};
use raft::storage::{MemStorage, PersistBatch, RocksStorage, Storage};
use tempfile::TempDir;

/// Tests of what only the RocksDB storage promises.
#[path = "storage_conformance/rocks_only.rs"]
mod rocks_only;

/// A storage under test, with the few operations outside the trait that
/// the suite needs.
trait Backend: Storage + Sized {
    /// What keeps the storage's files alive (dropped after the storage).
    type Guard;

    /// Returns a storage bootstrapped with `membership`, or a joining
    /// node's empty storage if it has no voter.
    fn create(membership: Membership) -> (Self, Self::Guard);

    /// Records an application snapshot at `index` made of `chunks`.
    fn create_snapshot(&mut self, index: LogIndex, membership: Membership, chunks: Vec<Bytes>);
}

impl Backend for MemStorage {
    type Guard = ();

    fn create(membership: Membership) -> (MemStorage, ()) {
        (MemStorage::new(membership), ())
    }

    fn create_snapshot(&mut self, index: LogIndex, membership: Membership, chunks: Vec<Bytes>) {
        let data: Vec<u8> = chunks.concat();
        MemStorage::create_snapshot(self, index, membership, Bytes::from(data));
    }
}

impl Backend for RocksStorage {
    type Guard = TempDir;

    fn create(membership: Membership) -> (RocksStorage, TempDir) {
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut storage = RocksStorage::open(dir.path()).expect("open a new store");
        assert!(storage.is_empty());
        if !membership.voters.is_empty() {
            storage.bootstrap(membership).expect("bootstrap");
        }
        (storage, dir)
    }

    fn create_snapshot(&mut self, index: LogIndex, membership: Membership, chunks: Vec<Bytes>) {
        RocksStorage::create_snapshot(self, index, membership, chunks).expect("create snapshot");
    }
}

/// A storage and what keeps it alive; fields drop in order, storage first.
struct Fixture<B: Backend> {
    storage: B,
    _guard: B::Guard,
}

impl<B: Backend> Fixture<B> {
    fn new(membership: Membership) -> Fixture<B> {
        let (storage, guard) = B::create(membership);
        Fixture {
            storage,
            _guard: guard,
        }
    }
}

fn voters(ids: &[u64]) -> Membership {
    Membership::with_voters(ids.iter().copied().map(NodeId))
}

/// Returns entries `indexes` of `term`, each with distinct data.
fn entries(indexes: std::ops::RangeInclusive<u64>, term: u64) -> Vec<Entry> {
    indexes
        .map(|index| Entry {
            term: Term(term),
            index: LogIndex(index),
            kind: EntryKind::Normal,
            data: Bytes::from(format!("entry {index} of term {term}")),
        })
        .collect()
}

fn append(storage: &mut impl Storage, entries: &[Entry]) -> Result<(), StorageError> {
    storage.persist(&PersistBatch {
        entries,
        ..PersistBatch::default()
    })
}

fn hard_state(term: u64, vote: Option<u64>, commit: u64) -> HardState {
    HardState {
        term: Term(term),
        vote: vote.map(NodeId),
        commit: LogIndex(commit),
    }
}

fn snapshot_meta(index: u64, term: u64, membership: Membership) -> SnapshotMeta {
    SnapshotMeta {
        index: LogIndex(index),
        term: Term(term),
        membership,
    }
}

fn chunk(meta: &SnapshotMeta, offset: u64, data: &'static [u8], last: bool) -> SnapshotChunk {
    SnapshotChunk {
        meta: meta.clone(),
        offset,
        data: Bytes::from_static(data),
        last,
    }
}

fn stage(storage: &mut impl Storage, chunks: &[SnapshotChunk]) -> Result<(), StorageError> {
    storage.persist(&PersistBatch {
        snapshot_chunks: chunks,
        ..PersistBatch::default()
    })
}

/// Persists the final `chunks` of the snapshot `meta` and installs it.
fn install(
    storage: &mut impl Storage,
    chunks: &[SnapshotChunk],
    meta: &SnapshotMeta,
) -> Result<(), StorageError> {
    storage.persist(&PersistBatch {
        snapshot_chunks: chunks,
        snapshot: Some(meta),
        ..PersistBatch::default()
    })
}

/// Returns the whole data of the snapshot at `index`, read through
/// `snapshot_chunk` in pieces of `bytes_max`.
fn read_snapshot(storage: &impl Storage, index: LogIndex, bytes_max: u64) -> Vec<u8> {
    let mut data = Vec::new();
    loop {
        let (piece, last) = storage
            .snapshot_chunk(index, data.len() as u64, bytes_max)
            .expect("snapshot chunk");
        data.extend_from_slice(&piece);
        if last {
            return data;
        }
        assert!(!piece.is_empty(), "no progress at offset {}", data.len());
    }
}

/// Generates one test per generic test and backend.
macro_rules! conformance {
    ($($test:ident),* $(,)?) => {
        mod mem {
            $(#[test] fn $test() { super::$test::<raft::storage::MemStorage>(); })*
        }
        mod rocks {
            $(#[test] fn $test() { super::$test::<raft::storage::RocksStorage>(); })*
        }
    };
}

conformance!(
    bootstrapped_store_starts_from_snapshot_at_index_one,
    joining_store_starts_empty_at_index_zero,
    appended_entries_read_back_with_their_terms,
    append_over_stored_index_truncates_the_suffix,
    append_leaving_a_gap_or_below_the_snapshot_is_refused,
    entries_stop_at_byte_limit_but_return_at_least_one,
    compacted_indexes_answer_compacted,
    hard_state_is_returned_by_initial_state,
    entries_and_hard_state_of_one_batch_persist_together,
    failed_batch_changes_neither_log_nor_hard_state,
    staged_snapshot_replaces_the_log_when_installed,
    install_without_staged_chunks_is_unavailable,
    chunk_not_following_the_staged_data_is_refused,
    chunk_at_offset_zero_restarts_staging,
    staged_bytes_are_reported_by_initial_state,
    snapshot_chunk_slices_the_snapshot_data,
    snapshot_chunk_of_another_index_is_unavailable,
    created_snapshot_keeps_later_entries,
);

// Goal: a bootstrapping node's log starts with the membership snapshot at
// index 1, term 1 (like etcd's bootstrap), with empty data.
fn bootstrapped_store_starts_from_snapshot_at_index_one<B: Backend>() {
    let fixture = Fixture::<B>::new(voters(&[1, 2, 3]));
    let storage = &fixture.storage;
    assert_eq!(storage.first_index(), LogIndex(2));
    assert_eq!(storage.last_index(), LogIndex(1));
    assert_eq!(storage.term(LogIndex(1)), Ok(Term(1)));
    assert_eq!(storage.term(LogIndex(0)), Err(StorageError::Compacted));
    assert_eq!(
        storage.snapshot_meta(),
        snapshot_meta(1, 1, voters(&[1, 2, 3]))
    );
    let initial = storage.initial_state().expect("initial state");
    assert_eq!(initial.hard_state, HardState::default());
    assert_eq!(initial.membership, voters(&[1, 2, 3]));
    assert_eq!(
        storage.snapshot_chunk(LogIndex(1), 0, 100),
        Ok((Bytes::new(), true))
    );
    assert_eq!(storage.entries(LogIndex(2), LogIndex(2), 100), Ok(vec![]));
}

// Goal: a joining node starts at index 0 with no membership and accepts
// entries from index 1.
fn joining_store_starts_empty_at_index_zero<B: Backend>() {
    let mut fixture = Fixture::<B>::new(Membership::default());
    let storage = &mut fixture.storage;
    assert_eq!(storage.first_index(), LogIndex(1));
    assert_eq!(storage.last_index(), LogIndex(0));
    assert_eq!(storage.term(LogIndex(0)), Ok(Term(0)));
    assert_eq!(storage.snapshot_meta(), SnapshotMeta::default());
    let initial = storage.initial_state().expect("initial state");
    assert_eq!(initial.membership, Membership::default());
    assert_eq!(
        storage.snapshot_chunk(LogIndex(0), 0, 10),
        Ok((Bytes::new(), true))
    );
    append(storage, &entries(1..=3, 1)).expect("append from index 1");
    assert_eq!(storage.last_index(), LogIndex(3));
    assert_eq!(
        storage.entries(LogIndex(1), LogIndex(4), u64::MAX),
        Ok(entries(1..=3, 1))
    );
}

fn appended_entries_read_back_with_their_terms<B: Backend>() {
    let mut fixture = Fixture::<B>::new(voters(&[1]));
    let storage = &mut fixture.storage;
    append(storage, &entries(2..=5, 1)).expect("append");
    append(storage, &entries(6..=10, 2)).expect("append");
    assert_eq!(storage.first_index(), LogIndex(2));
    assert_eq!(storage.last_index(), LogIndex(10));
    let mut expected = entries(2..=5, 1);
    expected.extend(entries(6..=10, 2));
    assert_eq!(
        storage.entries(LogIndex(2), LogIndex(11), u64::MAX),
        Ok(expected.clone())
    );
    assert_eq!(
        storage.entries(LogIndex(4), LogIndex(7), u64::MAX),
        Ok(expected[2..5].to_vec())
    );
    for entry in &expected {
        assert_eq!(storage.term(entry.index), Ok(entry.term));
    }
    assert!(matches!(
        storage.term(LogIndex(11)),
        Err(StorageError::Io(_))
    ));
}

// Goal: an append at a stored index replaces that entry and drops every
// later one (§5.3: a conflicting suffix belongs to a deposed leader).
fn append_over_stored_index_truncates_the_suffix<B: Backend>() {
    let mut fixture = Fixture::<B>::new(voters(&[1]));
    let storage = &mut fixture.storage;
    append(storage, &entries(2..=10, 1)).expect("append");
    append(storage, &entries(6..=7, 2)).expect("append over 6");
    assert_eq!(storage.last_index(), LogIndex(7));
    let mut expected = entries(2..=5, 1);
    expected.extend(entries(6..=7, 2));
    assert_eq!(
        storage.entries(LogIndex(2), LogIndex(8), u64::MAX),
        Ok(expected)
    );
    assert_eq!(storage.term(LogIndex(6)), Ok(Term(2)));
    assert!(storage.term(LogIndex(8)).is_err());
    // The log grows again over the truncated indexes.
    append(storage, &entries(8..=12, 3)).expect("append after truncation");
    assert_eq!(storage.last_index(), LogIndex(12));
    assert_eq!(
        storage.entries(LogIndex(8), LogIndex(13), u64::MAX),
        Ok(entries(8..=12, 3))
    );
    // Rewriting the last entry alone keeps the prefix.
    append(storage, &entries(12..=12, 4)).expect("rewrite the last entry");
    assert_eq!(storage.term(LogIndex(11)), Ok(Term(3)));
    assert_eq!(storage.term(LogIndex(12)), Ok(Term(4)));
}

fn append_leaving_a_gap_or_below_the_snapshot_is_refused<B: Backend>() {
    let mut fixture = Fixture::<B>::new(voters(&[1]));
    let storage = &mut fixture.storage;
    append(storage, &entries(2..=4, 1)).expect("append");
    assert!(matches!(
        append(storage, &entries(6..=7, 1)),
        Err(StorageError::Io(_))
    ));
    assert!(matches!(
        append(storage, &entries(1..=2, 1)),
        Err(StorageError::Io(_))
    ));
    assert_eq!(storage.last_index(), LogIndex(4));
    assert_eq!(
        storage.entries(LogIndex(2), LogIndex(5), u64::MAX),
        Ok(entries(2..=4, 1))
    );
}

fn entries_stop_at_byte_limit_but_return_at_least_one<B: Backend>() {
    let mut fixture = Fixture::<B>::new(voters(&[1]));
    let storage = &mut fixture.storage;
    let all = entries(2..=9, 1);
    append(storage, &all).expect("append");
    let size = all[0].size_bytes();
    assert!(all.iter().all(|entry| entry.size_bytes() == size));
    let read = |bytes_max| storage.entries(LogIndex(2), LogIndex(10), bytes_max);
    assert_eq!(read(0), Ok(all[..1].to_vec()));
    assert_eq!(read(size - 1), Ok(all[..1].to_vec()));
    assert_eq!(read(size), Ok(all[..1].to_vec()));
    assert_eq!(read(3 * size), Ok(all[..3].to_vec()));
    assert_eq!(read(3 * size + 1), Ok(all[..3].to_vec()));
    assert_eq!(read(u64::MAX), Ok(all.clone()));
}

fn compacted_indexes_answer_compacted<B: Backend>() {
    let mut fixture = Fixture::<B>::new(voters(&[1]));
    let storage = &mut fixture.storage;
    append(storage, &entries(2..=10, 2)).expect("append");
    storage.create_snapshot(
        LogIndex(6),
        voters(&[1]),
        vec![Bytes::from_static(b"state")],
    );
    assert_eq!(storage.first_index(), LogIndex(7));
    assert_eq!(storage.last_index(), LogIndex(10));
    assert_eq!(storage.term(LogIndex(6)), Ok(Term(2)));
    assert_eq!(storage.term(LogIndex(5)), Err(StorageError::Compacted));
    assert_eq!(
        storage.entries(LogIndex(6), LogIndex(8), u64::MAX),
        Err(StorageError::Compacted)
    );
    assert_eq!(
        storage.entries(LogIndex(2), LogIndex(3), u64::MAX),
        Err(StorageError::Compacted)
    );
    assert_eq!(
        storage.entries(LogIndex(7), LogIndex(11), u64::MAX),
        Ok(entries(7..=10, 2))
    );
}

fn hard_state_is_returned_by_initial_state<B: Backend>() {
    let mut fixture = Fixture::<B>::new(voters(&[1, 2]));
    let storage = &mut fixture.storage;
    for state in [hard_state(2, Some(1), 0), hard_state(3, None, 0)] {
        storage
            .persist(&PersistBatch {
                hard_state: Some(&state),
                ..PersistBatch::default()
            })
            .expect("persist hard state");
        let initial = storage.initial_state().expect("initial state");
        assert_eq!(initial.hard_state, state);
        assert_eq!(initial.membership, voters(&[1, 2]));
    }
}

fn entries_and_hard_state_of_one_batch_persist_together<B: Backend>() {
    let mut fixture = Fixture::<B>::new(voters(&[1]));
    let storage = &mut fixture.storage;
    let state = hard_state(2, Some(1), 4);
    let batch_entries = entries(2..=4, 2);
    storage
        .persist(&PersistBatch {
            hard_state: Some(&state),
            entries: &batch_entries,
            ..PersistBatch::default()
        })
        .expect("persist");
    assert_eq!(storage.initial_state().expect("state").hard_state, state);
    assert_eq!(
        storage.entries(LogIndex(2), LogIndex(5), u64::MAX),
        Ok(batch_entries)
    );
}

// Goal: a batch that fails (here its snapshot cannot be installed) writes
// nothing, not even the entries and hard state that come with it.
fn failed_batch_changes_neither_log_nor_hard_state<B: Backend>() {
    let mut fixture = Fixture::<B>::new(voters(&[1]));
    let storage = &mut fixture.storage;
    append(storage, &entries(2..=3, 1)).expect("append");
    let meta = snapshot_meta(9, 2, voters(&[1]));
    let state = hard_state(5, Some(1), 0);
    let batch_entries = entries(4..=6, 1);
    let result = storage.persist(&PersistBatch {
        hard_state: Some(&state),
        snapshot: Some(&meta),
        entries: &batch_entries,
        ..PersistBatch::default()
    });
    assert_eq!(result, Err(StorageError::SnapshotUnavailable(LogIndex(9))));
    assert_eq!(storage.last_index(), LogIndex(3));
    assert_eq!(
        storage.initial_state().expect("state").hard_state,
        HardState::default()
    );
}

// Goal: a snapshot received in chunks over several Readies is staged,
// then installed with the last chunk: it replaces the whole log, and
// entries after it are appended in the same batch (§7).
fn staged_snapshot_replaces_the_log_when_installed<B: Backend>() {
    let mut fixture = Fixture::<B>::new(voters(&[1, 2]));
    let storage = &mut fixture.storage;
    append(storage, &entries(2..=12, 1)).expect("append");
    let meta = snapshot_meta(10, 3, voters(&[1, 2, 3]));
    stage(storage, &[chunk(&meta, 0, b"hello ", false)]).expect("first chunk");
    assert_eq!(
        storage.snapshot_meta(),
        snapshot_meta(1, 1, voters(&[1, 2]))
    );
    assert_eq!(storage.last_index(), LogIndex(12));
    let last_chunk = [chunk(&meta, 6, b"world", true)];
    let state = hard_state(3, None, 10);
    let after = entries(11..=11, 3);
    storage
        .persist(&PersistBatch {
            hard_state: Some(&state),
            snapshot_chunks: &last_chunk,
            snapshot: Some(&meta),
            entries: &after,
        })
        .expect("install");
    assert_eq!(storage.snapshot_meta(), meta);
    assert_eq!(storage.first_index(), LogIndex(11));
    assert_eq!(storage.last_index(), LogIndex(11));
    assert_eq!(storage.term(LogIndex(10)), Ok(Term(3)));
    assert_eq!(storage.term(LogIndex(9)), Err(StorageError::Compacted));
    assert_eq!(
        storage.entries(LogIndex(11), LogIndex(12), u64::MAX),
        Ok(after)
    );
    assert_eq!(read_snapshot(storage, LogIndex(10), 4), b"hello world");
    let initial = storage.initial_state().expect("initial state");
    assert_eq!(initial.membership, voters(&[1, 2, 3]));
    assert_eq!(initial.hard_state, state);
}

fn install_without_staged_chunks_is_unavailable<B: Backend>() {
    let mut fixture = Fixture::<B>::new(voters(&[1]));
    let storage = &mut fixture.storage;
    let meta = snapshot_meta(10, 3, voters(&[1]));
    assert_eq!(
        install(storage, &[], &meta),
        Err(StorageError::SnapshotUnavailable(LogIndex(10)))
    );
    // Chunks of another snapshot do not make this one installable.
    let other = snapshot_meta(12, 3, voters(&[1]));
    stage(storage, &[chunk(&other, 0, b"data", true)]).expect("stage");
    assert_eq!(
        install(storage, &[], &meta),
        Err(StorageError::SnapshotUnavailable(LogIndex(10)))
    );
    assert_eq!(storage.snapshot_meta(), snapshot_meta(1, 1, voters(&[1])));
}

fn chunk_not_following_the_staged_data_is_refused<B: Backend>() {
    let mut fixture = Fixture::<B>::new(voters(&[1]));
    let storage = &mut fixture.storage;
    let meta = snapshot_meta(10, 3, voters(&[1]));
    // Nothing staged yet: only offset 0 may start.
    assert!(stage(storage, &[chunk(&meta, 4, b"late", false)]).is_err());
    stage(storage, &[chunk(&meta, 0, b"abcd", false)]).expect("first chunk");
    // A gap, an overlap and a chunk of another snapshot.
    assert!(stage(storage, &[chunk(&meta, 5, b"x", false)]).is_err());
    assert!(stage(storage, &[chunk(&meta, 3, b"x", false)]).is_err());
    let other = snapshot_meta(11, 3, voters(&[1]));
    assert!(stage(storage, &[chunk(&other, 4, b"x", false)]).is_err());
    // The staged data is intact: the right next chunk completes it.
    let last = [chunk(&meta, 4, b"efgh", true)];
    install(storage, &last, &meta).expect("install");
    assert_eq!(read_snapshot(storage, LogIndex(10), 100), b"abcdefgh");
}

fn chunk_at_offset_zero_restarts_staging<B: Backend>() {
    let mut fixture = Fixture::<B>::new(voters(&[1]));
    let storage = &mut fixture.storage;
    let old = snapshot_meta(8, 2, voters(&[1]));
    let new = snapshot_meta(10, 3, voters(&[1]));
    stage(storage, &[chunk(&old, 0, b"old data, longer", false)]).expect("stage");
    // The leader restarts the transfer with a newer snapshot.
    let chunks = [chunk(&new, 0, b"new", false), chunk(&new, 3, b"!", true)];
    install(storage, &chunks, &new).expect("install");
    assert_eq!(storage.snapshot_meta(), new);
    assert_eq!(read_snapshot(storage, LogIndex(10), 2), b"new!");
}

// Goal: a node restarted mid-transfer learns what it had staged, so the
// transfer resumes there instead of at byte 0. Method: stage two chunks;
// `initial_state` names the snapshot and the bytes staged; installing it
// clears the report.
fn staged_bytes_are_reported_by_initial_state<B: Backend>() {
    let mut fixture = Fixture::<B>::new(voters(&[1]));
    let storage = &mut fixture.storage;
    let initial = storage.initial_state().expect("initial state");
    assert_eq!(initial.staged_snapshot, None, "nothing staged yet");
    let meta = snapshot_meta(10, 3, voters(&[1]));
    let chunks = [
        chunk(&meta, 0, b"abc", false),
        chunk(&meta, 3, b"de", false),
    ];
    stage(storage, &chunks).expect("stage");
    let initial = storage.initial_state().expect("initial state");
    assert_eq!(initial.staged_snapshot, Some((meta.clone(), 5)));
    let last = [chunk(&meta, 5, b"f", true)];
    install(storage, &last, &meta).expect("install");
    let initial = storage.initial_state().expect("initial state");
    assert_eq!(initial.staged_snapshot, None, "installed, nothing staged");
}

/// Returns snapshot data of `size` bytes cut into uneven chunks (an empty
/// one included).
fn uneven_chunks(size: usize) -> (Vec<u8>, Vec<Bytes>) {
    let data: Vec<u8> = (0..size).map(|byte| (byte * 7 % 251) as u8).collect();
    let mut chunks = Vec::new();
    let mut start = 0;
    for length in [1, 0, 300, 17].into_iter().cycle() {
        let end = (start + length).min(size);
        chunks.push(Bytes::copy_from_slice(&data[start..end]));
        start = end;
        if start == size {
            break;
        }
    }
    (data, chunks)
}

// Goal: any (offset, bytes_max) window of the snapshot data is served
// exactly, with `last` set once the window reaches the end.
fn snapshot_chunk_slices_the_snapshot_data<B: Backend>() {
    let mut fixture = Fixture::<B>::new(voters(&[1]));
    let storage = &mut fixture.storage;
    append(storage, &entries(2..=5, 1)).expect("append");
    let (data, chunks) = uneven_chunks(1000);
    storage.create_snapshot(LogIndex(5), voters(&[1]), chunks);
    let size = data.len() as u64;
    for offset in (0..=size + 3).step_by(7) {
        for bytes_max in [0, 1, 13, 299, 301, 500, 5000] {
            let start = offset.min(size);
            let end = start.saturating_add(bytes_max).min(size);
            let expected = &data[start as usize..end as usize];
            let (piece, last) = storage
                .snapshot_chunk(LogIndex(5), offset, bytes_max)
                .expect("snapshot chunk");
            assert_eq!(
                &piece[..],
                expected,
                "offset {offset}, bytes_max {bytes_max}"
            );
            assert_eq!(last, end == size, "offset {offset}, bytes_max {bytes_max}");
        }
    }
    assert_eq!(read_snapshot(storage, LogIndex(5), 64), data);
}

fn snapshot_chunk_of_another_index_is_unavailable<B: Backend>() {
    let mut fixture = Fixture::<B>::new(voters(&[1]));
    let storage = &mut fixture.storage;
    append(storage, &entries(2..=5, 1)).expect("append");
    storage.create_snapshot(LogIndex(3), voters(&[1]), vec![Bytes::from_static(b"a")]);
    for index in [1, 2, 4] {
        assert_eq!(
            storage.snapshot_chunk(LogIndex(index), 0, 10),
            Err(StorageError::SnapshotUnavailable(LogIndex(index)))
        );
    }
    // A newer snapshot replaces the older one.
    storage.create_snapshot(LogIndex(5), voters(&[1]), vec![Bytes::from_static(b"b")]);
    assert_eq!(
        storage.snapshot_chunk(LogIndex(3), 0, 10),
        Err(StorageError::SnapshotUnavailable(LogIndex(3)))
    );
    assert_eq!(
        storage.snapshot_chunk(LogIndex(5), 0, 10),
        Ok((Bytes::from_static(b"b"), true))
    );
}

fn created_snapshot_keeps_later_entries<B: Backend>() {
    let mut fixture = Fixture::<B>::new(voters(&[1]));
    let storage = &mut fixture.storage;
    append(storage, &entries(2..=8, 2)).expect("append");
    let membership = voters(&[1, 2]);
    storage.create_snapshot(LogIndex(5), membership.clone(), vec![Bytes::new()]);
    assert_eq!(
        storage.snapshot_meta(),
        snapshot_meta(5, 2, membership.clone())
    );
    assert_eq!(
        storage.initial_state().expect("state").membership,
        membership
    );
    assert_eq!(storage.first_index(), LogIndex(6));
    assert_eq!(storage.last_index(), LogIndex(8));
    assert_eq!(
        storage.entries(LogIndex(6), LogIndex(9), u64::MAX),
        Ok(entries(6..=8, 2))
    );
    assert_eq!(
        storage.snapshot_chunk(LogIndex(5), 0, 10),
        Ok((Bytes::new(), true))
    );
    // The log keeps growing after the snapshot.
    append(storage, &entries(9..=9, 3)).expect("append");
    assert_eq!(storage.term(LogIndex(9)), Ok(Term(3)));
}
