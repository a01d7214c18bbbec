//! Conformance suite of the [`Storage`] trait (STYLE.md A, after TiKV's
//! `engine_traits_tests`): one generic set of tests, each run against
//! [`MemStorage`] and [`RocksStorage`] (in a temporary directory), so both
//! keep the trait's `# Correctness` contract the same way: the log, the
//! hard state, compaction (which only truncates the log and records the
//! compacted prefix), installation of a restored snapshot (§7) and the
//! state a restart finds. Then the tests of what only the RocksDB storage
//! promises: a reopen reads everything back, a damaged record is reported
//! as corruption naming its index and column family, `persist` is atomic
//! and durable, and compaction writes no copy of anything.

use bytes::Bytes;
use raft::core::{
    Entry, EntryKind, HardState, LogIndex, Membership, NodeId, SnapshotMeta, StorageError, Term,
};
use raft::storage::{MemStorage, PersistBatch, RocksStorage, Storage};
use tempfile::TempDir;

/// Tests of what only the RocksDB storage promises.
#[path = "storage_conformance/rocks_only.rs"]
mod rocks_only;

/// The RocksDB storage's terms, kept in memory, against the memory
/// storage's.
#[path = "storage_conformance/terms_model.rs"]
mod terms_model;

/// A storage under test, with the few operations outside the trait that
/// the suite needs.
trait Backend: Storage + Sized {
    /// What keeps the storage's files alive (dropped after the storage).
    type Guard;

    /// Returns a storage bootstrapped with `membership`, or a joining
    /// node's empty storage if it has no voter.
    fn create(membership: Membership) -> (Self, Self::Guard);

    /// Returns what the node finds after a crash and a restart: the
    /// memory storage loses its unsynced writes, the RocksDB one is
    /// closed and reopened.
    fn restart(self) -> Self;
}

impl Backend for MemStorage {
    type Guard = ();

    fn create(membership: Membership) -> (MemStorage, ()) {
        (MemStorage::new(membership), ())
    }

    fn restart(mut self) -> MemStorage {
        self.lose_unsynced();
        self
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

    fn restart(self) -> RocksStorage {
        let path = self.path().to_path_buf();
        drop(self);
        RocksStorage::open(&path).expect("reopen")
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

    /// Crashes and restarts the storage ([`Backend::restart`]).
    fn restart(self) -> Fixture<B> {
        let Fixture { storage, _guard } = self;
        Fixture {
            storage: storage.restart(),
            _guard,
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

/// Installs the restored snapshot `meta`, alone in its batch.
fn install(storage: &mut impl Storage, meta: &SnapshotMeta) -> Result<(), StorageError> {
    storage.persist(&PersistBatch {
        snapshot: Some(meta),
        ..PersistBatch::default()
    })
}

/// Everything the trait lets a reader see, for comparing a storage before
/// and after an operation or a restart.
#[derive(Debug, PartialEq, Eq)]
struct Observed {
    first_index: LogIndex,
    last_index: LogIndex,
    snapshot_meta: SnapshotMeta,
    hard_state: HardState,
    membership: Membership,
    /// The term of the compacted prefix (`first_index - 1`).
    prefix_term: Result<Term, StorageError>,
    entries: Vec<Entry>,
}

fn observe(storage: &impl Storage) -> Observed {
    let (first_index, last_index) = (storage.first_index(), storage.last_index());
    let initial = storage.initial_state().expect("initial state");
    Observed {
        first_index,
        last_index,
        snapshot_meta: storage.snapshot_meta(),
        hard_state: initial.hard_state,
        membership: initial.membership,
        prefix_term: storage.term(first_index.prev()),
        entries: storage
            .entries(first_index, last_index.next(), u64::MAX)
            .expect("every entry of the log"),
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
    bootstrapped_store_starts_from_prefix_at_index_one,
    joining_store_starts_empty_at_index_zero,
    appended_entries_read_back_with_their_terms,
    append_over_stored_index_truncates_the_suffix,
    append_leaving_a_gap_or_below_the_prefix_is_refused,
    entries_stop_at_byte_limit_but_return_at_least_one,
    hard_state_is_returned_by_initial_state,
    entries_and_hard_state_of_one_batch_persist_together,
    failed_batch_changes_neither_log_nor_hard_state,
    compaction_drops_exactly_the_covered_entries,
    compaction_of_the_whole_log_leaves_it_empty_and_growing,
    compaction_at_or_below_the_prefix_is_a_noop,
    compaction_past_the_log_is_an_error_and_changes_nothing,
    install_holding_the_last_entry_keeps_the_suffix,
    install_of_another_term_drops_every_entry,
    install_past_the_log_drops_every_entry,
    install_into_an_empty_joiner_starts_its_log,
    install_entries_and_hard_state_apply_in_order_in_one_batch,
    restart_after_compaction_reads_the_same_state,
    restart_after_install_reads_the_same_state,
    initial_membership_is_the_later_of_saved_and_prefix,
);

// Goal: a bootstrapping node's log starts with the compacted prefix at
// index 1, term 1 carrying the membership (like etcd's bootstrap).
fn bootstrapped_store_starts_from_prefix_at_index_one<B: Backend>() {
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

fn append_leaving_a_gap_or_below_the_prefix_is_refused<B: Backend>() {
    let mut fixture = Fixture::<B>::new(voters(&[1]));
    let storage = &mut fixture.storage;
    append(storage, &entries(2..=6, 1)).expect("append");
    assert!(matches!(
        append(storage, &entries(8..=9, 1)),
        Err(StorageError::Io(_))
    ));
    assert!(matches!(
        append(storage, &entries(1..=2, 1)),
        Err(StorageError::Io(_))
    ));
    storage.compact(LogIndex(4), voters(&[1])).expect("compact");
    assert!(matches!(
        append(storage, &entries(4..=5, 2)),
        Err(StorageError::Io(_))
    ));
    assert_eq!(storage.last_index(), LogIndex(6));
    assert_eq!(
        storage.entries(LogIndex(5), LogIndex(7), u64::MAX),
        Ok(entries(5..=6, 1))
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
        assert_eq!(storage.hard_state(), state);
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

// Goal: a batch that fails (here its entries leave a gap) writes nothing,
// not even the hard state that comes with it.
fn failed_batch_changes_neither_log_nor_hard_state<B: Backend>() {
    let mut fixture = Fixture::<B>::new(voters(&[1]));
    let storage = &mut fixture.storage;
    append(storage, &entries(2..=3, 1)).expect("append");
    let before = observe(storage);
    let state = hard_state(5, Some(1), 0);
    let batch_entries = entries(5..=6, 1);
    let result = storage.persist(&PersistBatch {
        hard_state: Some(&state),
        entries: &batch_entries,
        ..PersistBatch::default()
    });
    assert!(matches!(result, Err(StorageError::Io(_))), "{result:?}");
    assert_eq!(observe(storage), before);
    assert_eq!(storage.hard_state(), HardState::default());
}

// Goal: compaction drops exactly the entries up to its index and records
// that index, its term and the given membership as the compacted prefix;
// the entries after it are untouched and the log keeps growing.
fn compaction_drops_exactly_the_covered_entries<B: Backend>() {
    let mut fixture = Fixture::<B>::new(voters(&[1]));
    let storage = &mut fixture.storage;
    append(storage, &entries(2..=5, 1)).expect("append");
    append(storage, &entries(6..=10, 2)).expect("append");
    storage
        .compact(LogIndex(6), voters(&[1, 2]))
        .expect("compact");
    assert_eq!(
        storage.snapshot_meta(),
        snapshot_meta(6, 2, voters(&[1, 2]))
    );
    assert_eq!(storage.first_index(), LogIndex(7));
    assert_eq!(storage.last_index(), LogIndex(10));
    assert_eq!(storage.term(LogIndex(6)), Ok(Term(2)));
    assert_eq!(storage.term(LogIndex(5)), Err(StorageError::Compacted));
    assert_eq!(storage.term(LogIndex(0)), Err(StorageError::Compacted));
    for low in [2, 5, 6] {
        assert_eq!(
            storage.entries(LogIndex(low), LogIndex(8), u64::MAX),
            Err(StorageError::Compacted),
            "entries from {low}"
        );
    }
    assert_eq!(
        storage.entries(LogIndex(7), LogIndex(11), u64::MAX),
        Ok(entries(7..=10, 2))
    );
    assert_eq!(
        storage.initial_state().expect("state").membership,
        voters(&[1, 2])
    );
    // The log keeps growing, and a conflicting suffix after the prefix is
    // still truncated.
    append(storage, &entries(11..=12, 3)).expect("append");
    append(storage, &entries(9..=9, 4)).expect("append over 9");
    assert_eq!(storage.last_index(), LogIndex(9));
    assert_eq!(storage.term(LogIndex(9)), Ok(Term(4)));
    assert_eq!(
        storage.entries(LogIndex(7), LogIndex(9), u64::MAX),
        Ok(entries(7..=8, 2))
    );
}

// Goal: compacting up to the last entry leaves an empty log right after
// the prefix, which appends continue.
fn compaction_of_the_whole_log_leaves_it_empty_and_growing<B: Backend>() {
    let mut fixture = Fixture::<B>::new(voters(&[1]));
    let storage = &mut fixture.storage;
    append(storage, &entries(2..=8, 3)).expect("append");
    storage.compact(LogIndex(8), voters(&[1])).expect("compact");
    assert_eq!(storage.snapshot_meta(), snapshot_meta(8, 3, voters(&[1])));
    assert_eq!(storage.first_index(), LogIndex(9));
    assert_eq!(storage.last_index(), LogIndex(8));
    assert_eq!(storage.term(LogIndex(8)), Ok(Term(3)));
    assert_eq!(storage.entries(LogIndex(9), LogIndex(9), 0), Ok(vec![]));
    append(storage, &entries(9..=10, 4)).expect("append after the prefix");
    assert_eq!(
        storage.entries(LogIndex(9), LogIndex(11), u64::MAX),
        Ok(entries(9..=10, 4))
    );
}

// Goal: compaction at or below the current prefix changes nothing, not
// even the recorded membership.
fn compaction_at_or_below_the_prefix_is_a_noop<B: Backend>() {
    let mut fixture = Fixture::<B>::new(voters(&[1]));
    let storage = &mut fixture.storage;
    append(storage, &entries(2..=10, 2)).expect("append");
    storage
        .compact(LogIndex(6), voters(&[1, 2]))
        .expect("compact");
    let before = observe(storage);
    for index in [6, 5, 1, 0] {
        storage
            .compact(LogIndex(index), voters(&[7]))
            .expect("a no-op compaction succeeds");
        assert_eq!(observe(storage), before, "compaction at {index}");
    }
}

// Goal: compaction past the last entry is refused and changes nothing,
// also across a restart.
fn compaction_past_the_log_is_an_error_and_changes_nothing<B: Backend>() {
    let mut fixture = Fixture::<B>::new(voters(&[1]));
    append(&mut fixture.storage, &entries(2..=5, 1)).expect("append");
    let before = observe(&fixture.storage);
    for index in [6, 100] {
        let result = fixture.storage.compact(LogIndex(index), voters(&[1, 2]));
        assert!(result.is_err(), "compaction at {index}: {result:?}");
        assert_eq!(observe(&fixture.storage), before, "compaction at {index}");
    }
    let fixture = fixture.restart();
    assert_eq!(observe(&fixture.storage), before);
}

// Goal: installing a snapshot whose last entry the log holds (same index
// and term) drops the entries up to it and keeps the ones after (§7).
fn install_holding_the_last_entry_keeps_the_suffix<B: Backend>() {
    let mut fixture = Fixture::<B>::new(voters(&[1]));
    let storage = &mut fixture.storage;
    append(storage, &entries(2..=5, 1)).expect("append");
    append(storage, &entries(6..=10, 2)).expect("append");
    let meta = snapshot_meta(7, 2, voters(&[1, 2, 3]));
    install(storage, &meta).expect("install");
    assert_eq!(storage.snapshot_meta(), meta);
    assert_eq!(storage.first_index(), LogIndex(8));
    assert_eq!(storage.last_index(), LogIndex(10));
    assert_eq!(storage.term(LogIndex(7)), Ok(Term(2)));
    assert_eq!(storage.term(LogIndex(6)), Err(StorageError::Compacted));
    assert_eq!(
        storage.entries(LogIndex(7), LogIndex(9), u64::MAX),
        Err(StorageError::Compacted)
    );
    assert_eq!(
        storage.entries(LogIndex(8), LogIndex(11), u64::MAX),
        Ok(entries(8..=10, 2))
    );
    assert_eq!(
        storage.initial_state().expect("state").membership,
        voters(&[1, 2, 3])
    );
    // Holding the very last entry keeps an empty suffix.
    let meta = snapshot_meta(10, 2, voters(&[1, 2]));
    install(storage, &meta).expect("install at the last entry");
    assert_eq!(storage.snapshot_meta(), meta);
    assert_eq!(storage.last_index(), LogIndex(10));
    append(storage, &entries(11..=11, 2)).expect("append after it");
}

// Goal: a snapshot whose last index the log holds with another term
// replaces the whole log: the suffix conflicts with it (§7).
fn install_of_another_term_drops_every_entry<B: Backend>() {
    let mut fixture = Fixture::<B>::new(voters(&[1]));
    let storage = &mut fixture.storage;
    append(storage, &entries(2..=10, 1)).expect("append");
    let meta = snapshot_meta(7, 3, voters(&[1, 2]));
    install(storage, &meta).expect("install");
    assert_eq!(storage.snapshot_meta(), meta);
    assert_eq!(storage.first_index(), LogIndex(8));
    assert_eq!(storage.last_index(), LogIndex(7));
    assert_eq!(storage.term(LogIndex(7)), Ok(Term(3)));
    assert!(storage.term(LogIndex(8)).is_err());
    assert_eq!(storage.entries(LogIndex(8), LogIndex(8), 0), Ok(vec![]));
    append(storage, &entries(8..=9, 3)).expect("append after it");
    assert_eq!(
        storage.entries(LogIndex(8), LogIndex(10), u64::MAX),
        Ok(entries(8..=9, 3))
    );
}

// Goal: a snapshot past the last entry replaces the whole log.
fn install_past_the_log_drops_every_entry<B: Backend>() {
    let mut fixture = Fixture::<B>::new(voters(&[1]));
    let storage = &mut fixture.storage;
    append(storage, &entries(2..=10, 1)).expect("append");
    storage.compact(LogIndex(4), voters(&[1])).expect("compact");
    let meta = snapshot_meta(20, 2, voters(&[1, 2]));
    install(storage, &meta).expect("install");
    assert_eq!(storage.snapshot_meta(), meta);
    assert_eq!(storage.first_index(), LogIndex(21));
    assert_eq!(storage.last_index(), LogIndex(20));
    assert_eq!(storage.term(LogIndex(20)), Ok(Term(2)));
    assert_eq!(storage.term(LogIndex(10)), Err(StorageError::Compacted));
    assert_eq!(
        storage.entries(LogIndex(11), LogIndex(12), u64::MAX),
        Err(StorageError::Compacted)
    );
    append(storage, &entries(21..=21, 2)).expect("append after it");
    assert_eq!(storage.last_index(), LogIndex(21));
}

// Goal: a joining node's first snapshot gives it its prefix and its
// membership.
fn install_into_an_empty_joiner_starts_its_log<B: Backend>() {
    let mut fixture = Fixture::<B>::new(Membership::default());
    let storage = &mut fixture.storage;
    let meta = snapshot_meta(5, 2, voters(&[1, 2, 3]));
    install(storage, &meta).expect("install");
    assert_eq!(storage.snapshot_meta(), meta);
    assert_eq!(storage.first_index(), LogIndex(6));
    assert_eq!(storage.last_index(), LogIndex(5));
    assert_eq!(
        storage.initial_state().expect("state").membership,
        voters(&[1, 2, 3])
    );
}

// Goal: one batch installs, then appends, then sets the hard state: the
// entries of the batch follow the installed prefix, whether the install
// kept the suffix (and they then truncate it) or dropped it.
fn install_entries_and_hard_state_apply_in_order_in_one_batch<B: Backend>() {
    let mut fixture = Fixture::<B>::new(voters(&[1, 2]));
    let storage = &mut fixture.storage;
    append(storage, &entries(2..=12, 1)).expect("append");

    // The log holds (6, 1): 7 stays, 8.. is replaced by the batch.
    let held = snapshot_meta(6, 1, voters(&[1, 2]));
    let state = hard_state(3, Some(2), 6);
    let after = entries(8..=9, 3);
    storage
        .persist(&PersistBatch {
            hard_state: Some(&state),
            snapshot: Some(&held),
            entries: &after,
        })
        .expect("install, append, hard state");
    assert_eq!(storage.snapshot_meta(), held);
    assert_eq!(storage.last_index(), LogIndex(9));
    let mut expected = entries(7..=7, 1);
    expected.extend(after);
    assert_eq!(
        storage.entries(LogIndex(7), LogIndex(10), u64::MAX),
        Ok(expected)
    );
    assert_eq!(storage.hard_state(), state);

    // The log does not hold (12, 4): everything goes, 13 follows.
    let replacing = snapshot_meta(12, 4, voters(&[1, 2, 3]));
    let state = hard_state(4, None, 12);
    let after = entries(13..=13, 4);
    storage
        .persist(&PersistBatch {
            hard_state: Some(&state),
            snapshot: Some(&replacing),
            entries: &after,
        })
        .expect("install, append, hard state");
    assert_eq!(storage.snapshot_meta(), replacing);
    assert_eq!(storage.first_index(), LogIndex(13));
    assert_eq!(storage.last_index(), LogIndex(13));
    assert_eq!(
        storage.entries(LogIndex(13), LogIndex(14), u64::MAX),
        Ok(after)
    );
    let initial = storage.initial_state().expect("initial state");
    assert_eq!(initial.hard_state, state);
    assert_eq!(initial.membership, voters(&[1, 2, 3]));
}

// Goal: compaction is durable: a restart right after it finds the same
// prefix, log, hard state and membership.
fn restart_after_compaction_reads_the_same_state<B: Backend>() {
    let mut fixture = Fixture::<B>::new(voters(&[1]));
    let state = hard_state(2, Some(1), 8);
    fixture
        .storage
        .persist(&PersistBatch {
            hard_state: Some(&state),
            entries: &entries(2..=10, 2),
            ..PersistBatch::default()
        })
        .expect("persist");
    fixture
        .storage
        .compact(LogIndex(8), voters(&[1, 2]))
        .expect("compact");
    let before = observe(&fixture.storage);
    assert_eq!(before.first_index, LogIndex(9));
    let mut fixture = fixture.restart();
    assert_eq!(observe(&fixture.storage), before);
    // A second compaction, of everything, survives a restart too.
    fixture
        .storage
        .compact(LogIndex(10), voters(&[1, 2, 3]))
        .expect("compact");
    let before = observe(&fixture.storage);
    assert!(before.entries.is_empty());
    let fixture = fixture.restart();
    assert_eq!(observe(&fixture.storage), before);
}

// Goal: an installed snapshot is durable with the batch that installs it.
fn restart_after_install_reads_the_same_state<B: Backend>() {
    let mut fixture = Fixture::<B>::new(voters(&[1]));
    append(&mut fixture.storage, &entries(2..=10, 1)).expect("append");
    let kept = snapshot_meta(5, 1, voters(&[1, 2]));
    install(&mut fixture.storage, &kept).expect("install keeping 6..=10");
    let before = observe(&fixture.storage);
    assert_eq!(before.entries, entries(6..=10, 1));
    let mut fixture = fixture.restart();
    assert_eq!(observe(&fixture.storage), before);

    let replacing = snapshot_meta(30, 5, voters(&[2, 3]));
    let state = hard_state(5, None, 30);
    fixture
        .storage
        .persist(&PersistBatch {
            hard_state: Some(&state),
            snapshot: Some(&replacing),
            ..PersistBatch::default()
        })
        .expect("install replacing the log");
    let before = observe(&fixture.storage);
    let fixture = fixture.restart();
    assert_eq!(observe(&fixture.storage), before);
    assert_eq!(fixture.storage.snapshot_meta(), replacing);
    assert_eq!(fixture.storage.hard_state(), state);
}

// Goal: the membership a node starts with is the later, by index, of the
// one saved after an applied change and the compacted prefix's.
fn initial_membership_is_the_later_of_saved_and_prefix<B: Backend>() {
    let mut fixture = Fixture::<B>::new(voters(&[1]));
    let membership = |storage: &B| storage.initial_state().expect("state").membership;
    append(&mut fixture.storage, &entries(2..=12, 1)).expect("append");
    fixture
        .storage
        .save_membership(&voters(&[1, 2]), LogIndex(4))
        .expect("save");
    assert_eq!(membership(&fixture.storage), voters(&[1, 2]));
    // A prefix past the saved change wins.
    fixture
        .storage
        .compact(LogIndex(6), voters(&[1, 2, 3]))
        .expect("compact");
    assert_eq!(membership(&fixture.storage), voters(&[1, 2, 3]));
    // A change saved past the prefix wins, also after a restart.
    fixture
        .storage
        .save_membership(&voters(&[2, 3]), LogIndex(8))
        .expect("save");
    assert_eq!(membership(&fixture.storage), voters(&[2, 3]));
    let mut fixture = fixture.restart();
    assert_eq!(membership(&fixture.storage), voters(&[2, 3]));
    assert_eq!(
        fixture.storage.snapshot_meta().membership,
        voters(&[1, 2, 3])
    );
    // An installed snapshot past the saved change wins.
    install(&mut fixture.storage, &snapshot_meta(10, 1, voters(&[4]))).expect("install");
    assert_eq!(membership(&fixture.storage), voters(&[4]));
    let fixture = fixture.restart();
    assert_eq!(membership(&fixture.storage), voters(&[4]));
}
