//! The core's view of durable storage: the [`Storage`] trait it reads the
//! log through, and what one `Ready` asks to make durable
//! ([`PersistBatch`]). The implementations (`MemStorage`, `RocksStorage`)
//! live in the `storage` module; the core depends on this contract only.

use crate::core::{Entry, HardState, LogIndex, Membership, SnapshotMeta, StorageError, Term};

/// The durable state a node starts from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InitialState {
    /// Term, vote and commit as last persisted.
    pub hard_state: HardState,
    /// The membership as of the latest snapshot, or as of a later applied
    /// change if the storage saved one ([`Storage::save_membership`]); the
    /// core replays the membership changes of later committed entries
    /// itself.
    pub membership: Membership,
}

/// Everything one `Ready` asks to make durable, applied in this order:
/// snapshot installation, entries, hard state.
#[derive(Clone, Copy, Debug, Default)]
pub struct PersistBatch<'a> {
    /// The new hard state, if it changed.
    pub hard_state: Option<&'a HardState>,
    /// A snapshot the application restored: it becomes the compacted
    /// prefix. The entries after it stay if the log holds its last entry
    /// (same index and term); every entry is dropped otherwise (§7).
    pub snapshot: Option<&'a SnapshotMeta>,
    /// Entries to append; an entry at an index already stored replaces it
    /// and every later one (the suffix is truncated).
    pub entries: &'a [Entry],
}

impl PersistBatch<'_> {
    /// Returns whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.hard_state.is_none() && self.snapshot.is_none() && self.entries.is_empty()
    }

    /// Returns whether the batch must be synced, given the hard state
    /// stored before it: anything but a new commit index must (etcd's
    /// rule). Nothing is acknowledged on the strength of a stored commit
    /// index, and a node that loses one learns it again from its leader;
    /// a storage writes an unsynced batch in order with the synced ones,
    /// so it is lost only if every later write is lost too.
    pub fn must_sync(&self, stored: &HardState) -> bool {
        self.snapshot.is_some()
            || !self.entries.is_empty()
            || self
                .hard_state
                .is_some_and(|next| next.term != stored.term || next.vote != stored.vote)
    }
}

/// The durable log of one Raft node.
///
/// # Correctness
/// - `persist` is atomic and, when [`PersistBatch::must_sync`], durable
///   when it returns: after a crash either all of the batch is readable or
///   none of it, and nothing acknowledged (vote, append) depends on a
///   write that could be lost. An unsynced batch (a new commit index only)
///   may be lost by a power failure, but never while a later batch
///   survives.
/// - `term(first_index() - 1)` returns the snapshot's term: the entry just
///   below the log is always described by the latest snapshot.
/// - Indexes below `first_index()` answer [`StorageError::Compacted`].
/// - Errors other than `Compacted` and `SnapshotUnavailable` are fatal: the
///   core panics with the error, so the node stops loudly instead of
///   acting on a log it cannot read.
pub trait Storage {
    /// Returns the hard state and membership to start from.
    fn initial_state(&self) -> Result<InitialState, StorageError>;

    /// Returns the hard state last persisted (what [`PersistBatch::must_sync`]
    /// compares a new one with).
    fn hard_state(&self) -> HardState;

    /// Returns the entries in `[low, high)`, stopping once their total size
    /// passes `bytes_max` but always returning at least one entry when the
    /// range is not empty.
    fn entries(
        &self,
        low: LogIndex,
        high: LogIndex,
        bytes_max: u64,
    ) -> Result<Vec<Entry>, StorageError>;

    /// Returns the term of the entry at `index`, for `index` in
    /// `[first_index() - 1, last_index()]`.
    fn term(&self, index: LogIndex) -> Result<Term, StorageError>;

    /// Returns the index of the first entry still in the log.
    fn first_index(&self) -> LogIndex;

    /// Returns the index of the last entry (the snapshot's index if the log
    /// is empty).
    fn last_index(&self) -> LogIndex;

    /// Returns the compacted prefix: the index and term of the last entry
    /// dropped from the log (the application's state covers it) and the
    /// membership as of it.
    fn snapshot_meta(&self) -> SnapshotMeta;

    /// Drops the entries up to `index` and records it (with its term and
    /// `membership`, the membership in force at it) as the compacted
    /// prefix; nothing of the application's state is copied. A synced
    /// write: the caller may compact only up to an index the application
    /// has applied, and this write makes that application state durable
    /// first (one database, one write-ahead log). An index at or below the
    /// current prefix is a no-op.
    ///
    /// # Errors
    /// [`StorageError::Compacted`] or another error if `index` is not in
    /// the log.
    fn compact(&mut self, index: LogIndex, membership: Membership) -> Result<(), StorageError>;

    /// Makes a batch durable (see [`PersistBatch`] for the order).
    fn persist(&mut self, batch: &PersistBatch<'_>) -> Result<(), StorageError>;

    /// Makes durable `membership`, the membership in force after applying
    /// the change at `index`. Called by the driver after applying a
    /// membership change so a restart that resumes after the applied index
    /// knows it: [`Storage::initial_state`] then returns the later of this
    /// and the compacted prefix's membership.
    fn save_membership(
        &mut self,
        membership: &Membership,
        index: LogIndex,
    ) -> Result<(), StorageError>;
}

/// Returns the longest prefix of `entries` within `bytes_max`, but at least
/// one entry.
pub(crate) fn limit_size<'a>(
    entries: impl IntoIterator<Item = &'a Entry>,
    bytes_max: u64,
) -> Vec<Entry> {
    let mut total = 0u64;
    let mut found = Vec::new();
    for entry in entries {
        total += entry.size_bytes();
        if !found.is_empty() && total > bytes_max {
            break;
        }
        found.push(entry.clone());
    }
    found
}
