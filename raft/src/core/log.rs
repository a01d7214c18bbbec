//! The Raft log as the core sees it: durable entries in [`Storage`] followed
//! by the [`Unstable`] tail, with the commit and applied indexes (etcd's
//! `raftLog`).
//!
//! Invariants:
//! - `applied <= committed <= last_index()`.
//! - A committed entry is never truncated: appending over one is a safety
//!   violation and panics.
//! - Storage errors other than `Compacted` are fatal (see [`Storage`]).

use crate::core::StorageError;
use crate::core::storage::Storage;
use crate::core::storage::limit_size;
use crate::core::types::{Entry, LogIndex, SnapshotMeta, Term};
use crate::core::unstable::Unstable;

/// The log of one node.
pub struct RaftLog<S: Storage> {
    /// The durable part.
    pub storage: S,
    /// The part not yet durable.
    pub unstable: Unstable,
    /// The highest index known committed. Invariant: `<= last_index()`.
    pub committed: LogIndex,
    /// The highest index handed to the application. Invariant: `<= committed`.
    pub applied: LogIndex,
    /// A restored snapshot for the storage to install with the next Ready.
    pub installing: Option<SnapshotMeta>,
}

/// Panics on a storage error the core cannot recover from.
fn fatal(error: StorageError) -> ! {
    panic!("raft storage failed, stopping the node: {error}")
}

impl<S: Storage> RaftLog<S> {
    /// Returns the log over `storage`, with commit and applied at the
    /// snapshot.
    pub fn new(storage: S) -> RaftLog<S> {
        let snapshot_index = storage.first_index().prev();
        let offset = storage.last_index().next();
        RaftLog {
            storage,
            unstable: Unstable::new(offset),
            committed: snapshot_index,
            applied: snapshot_index,
            installing: None,
        }
    }

    /// Returns the index of the first entry still present.
    pub fn first_index(&self) -> LogIndex {
        self.unstable
            .first_index()
            .unwrap_or_else(|| self.storage.first_index())
    }

    /// Returns the index of the last entry.
    pub fn last_index(&self) -> LogIndex {
        self.unstable
            .last_index()
            .unwrap_or_else(|| self.storage.last_index())
    }

    /// Returns the term of the last entry.
    pub fn last_term(&self) -> Term {
        self.term(self.last_index())
            .unwrap_or_else(|error| fatal(error))
    }

    /// Returns the term at `index`: `Compacted` below the snapshot, term 0
    /// past the end.
    pub fn term(&self, index: LogIndex) -> Result<Term, StorageError> {
        if index < self.first_index().prev() {
            return Err(StorageError::Compacted);
        }
        if index > self.last_index() {
            return Ok(Term(0));
        }
        if let Some(term) = self.unstable.term(index) {
            return Ok(term);
        }
        match self.storage.term(index) {
            Ok(term) => Ok(term),
            Err(StorageError::Compacted) => Err(StorageError::Compacted),
            Err(error) => fatal(error),
        }
    }

    /// Returns whether the entry at `index` has `term`.
    pub fn match_term(&self, index: LogIndex, term: Term) -> bool {
        self.term(index).is_ok_and(|found| found == term)
    }

    /// Returns whether a log ending at (`last_index`, `last_term`) is at
    /// least as up-to-date as this one (§5.4.1).
    pub fn is_up_to_date(&self, last_index: LogIndex, last_term: Term) -> bool {
        let my_term = self.last_term();
        last_term > my_term || (last_term == my_term && last_index >= self.last_index())
    }

    /// Returns the first index where `entries` disagree with the log, if any.
    fn find_conflict(&self, entries: &[Entry]) -> Option<LogIndex> {
        entries
            .iter()
            .find(|entry| !self.match_term(entry.index, entry.term))
            .map(|entry| entry.index)
    }

    /// Returns the last index at or below `index` whose term is at most
    /// `term`, and that term (0 if compacted): the fast-backtracking hint.
    pub fn find_conflict_by_term(&self, mut index: LogIndex, term: Term) -> (LogIndex, Term) {
        loop {
            match self.term(index) {
                Ok(found) if found > term && index > LogIndex(0) => index = index.prev(),
                Ok(found) => return (index, found),
                Err(_) => return (index, Term(0)),
            }
        }
    }

    /// Appends `entries` after (`prev_index`, `prev_term`) if the log
    /// matches there (§5.3); returns the index of the last new entry.
    pub fn maybe_append(
        &mut self,
        prev_index: LogIndex,
        prev_term: Term,
        commit: LogIndex,
        entries: &[Entry],
    ) -> Option<LogIndex> {
        if !self.match_term(prev_index, prev_term) {
            return None;
        }
        let last_new = LogIndex(prev_index.0 + entries.len() as u64);
        if let Some(conflict) = self.find_conflict(entries) {
            assert!(
                conflict > self.committed,
                "entry {conflict} conflicts with committed index {}",
                self.committed
            );
            let start = (conflict.0 - prev_index.0 - 1) as usize;
            self.append(&entries[start..]);
        }
        self.commit_to(commit.min(last_new));
        Some(last_new)
    }

    /// Appends entries (truncating any conflicting suffix); returns the new
    /// last index.
    pub fn append(&mut self, entries: &[Entry]) -> LogIndex {
        if let Some(first) = entries.first() {
            assert!(
                first.index > self.committed,
                "append at {} would overwrite committed index {}",
                first.index,
                self.committed
            );
            self.unstable.truncate_and_append(entries);
        }
        self.last_index()
    }

    /// Returns entries from `low` to the end, within `bytes_max` (at least
    /// one), or `Compacted`.
    pub fn entries_from(&self, low: LogIndex, bytes_max: u64) -> Result<Vec<Entry>, StorageError> {
        if low > self.last_index() {
            return Ok(Vec::new());
        }
        self.slice(low, self.last_index().next(), bytes_max)
    }

    /// Returns entries in `[low, high)` within `bytes_max` (at least one).
    pub fn slice(
        &self,
        low: LogIndex,
        high: LogIndex,
        bytes_max: u64,
    ) -> Result<Vec<Entry>, StorageError> {
        if low < self.first_index() {
            return Err(StorageError::Compacted);
        }
        assert!(
            high <= self.last_index().next(),
            "slice past the end: {high}"
        );
        let mut result = Vec::new();
        let stable_high = high.min(self.unstable.offset);
        if low < stable_high {
            result = match self.storage.entries(low, stable_high, bytes_max) {
                Ok(entries) => entries,
                Err(StorageError::Compacted) => return Err(StorageError::Compacted),
                Err(error) => fatal(error),
            };
            if (result.len() as u64) < stable_high.0 - low.0 {
                return Ok(result);
            }
        }
        let unstable_low = low.max(self.unstable.offset);
        if unstable_low < high {
            let start = (unstable_low.0 - self.unstable.offset.0) as usize;
            let end = (high.0 - self.unstable.offset.0) as usize;
            result.extend_from_slice(&self.unstable.entries[start..end]);
        }
        Ok(limit_size(&result, bytes_max))
    }

    /// Raises the commit index to `index`.
    pub fn commit_to(&mut self, index: LogIndex) {
        if index > self.committed {
            assert!(
                index <= self.last_index(),
                "commit {index} past the last index {}",
                self.last_index()
            );
            self.committed = index;
        }
    }

    /// Commits up to `index` if that entry is of `term` (the leader only
    /// commits entries of its own term by counting, §5.4.2).
    pub fn maybe_commit(&mut self, index: LogIndex, term: Term) -> bool {
        if index > self.committed && self.match_term(index, term) {
            self.commit_to(index);
            return true;
        }
        false
    }

    /// Returns the committed entries not yet handed to the application.
    pub fn next_committed_entries(&self, bytes_max: u64) -> Vec<Entry> {
        if self.applied >= self.committed || self.unstable.snapshot.is_some() {
            return Vec::new();
        }
        self.slice(self.applied.next(), self.committed.next(), bytes_max)
            .unwrap_or_else(|error| fatal(error))
    }

    /// Returns the index of the last durable entry.
    pub fn persisted_last_index(&self) -> LogIndex {
        match self.unstable.entries.first() {
            Some(first) => first.index.prev(),
            None => self.last_index(),
        }
    }

    /// Installs a snapshot the application restored (§7): if the log holds
    /// its last entry, the entries after it stay and only the commit index
    /// advances; otherwise the snapshot replaces the whole log. Either way
    /// the storage drops the entries it covers when it persists `meta`.
    pub fn install_snapshot(&mut self, meta: SnapshotMeta) {
        if self.match_term(meta.index, meta.term) {
            self.commit_to(meta.index);
            // The application's state is the snapshot's now (whatever it
            // had applied before the restore wiped it): the entries after
            // it are the ones to apply.
            self.applied = meta.index;
        } else {
            self.committed = meta.index;
            self.unstable.restore(meta.clone());
        }
        self.installing = Some(meta);
    }
}
