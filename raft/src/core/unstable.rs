//! Log entries and an incoming snapshot that the core holds until the node's
//! owner reports them durable (etcd's `unstable`).
//!
//! Invariants:
//! - `entries[i].index == offset + i`.
//! - If `snapshot` is set, every entry follows it: `offset > snapshot.index`.

use crate::core::types::{Entry, LogIndex, SnapshotMeta, Term};

/// The not-yet-durable tail of the log.
#[derive(Debug, Default)]
pub struct Unstable {
    /// A snapshot received from the leader, not yet installed by storage.
    pub snapshot: Option<SnapshotMeta>,
    /// Entries not yet persisted. Invariant: `entries[i].index == offset + i`.
    pub entries: Vec<Entry>,
    /// The index of `entries[0]` (or of the next entry if empty).
    pub offset: LogIndex,
}

impl Unstable {
    /// Returns an empty buffer whose next entry will be `offset`.
    pub fn new(offset: LogIndex) -> Unstable {
        Unstable {
            snapshot: None,
            entries: Vec::new(),
            offset,
        }
    }

    /// Returns the first log index if an unstable snapshot defines it.
    pub fn first_index(&self) -> Option<LogIndex> {
        self.snapshot.as_ref().map(|meta| meta.index.next())
    }

    /// Returns the last log index if the unstable part defines it.
    pub fn last_index(&self) -> Option<LogIndex> {
        match self.entries.last() {
            Some(entry) => Some(entry.index),
            None => self.snapshot.as_ref().map(|meta| meta.index),
        }
    }

    /// Returns the term at `index` if the unstable part holds it.
    pub fn term(&self, index: LogIndex) -> Option<Term> {
        if index < self.offset {
            return self
                .snapshot
                .as_ref()
                .filter(|meta| meta.index == index)
                .map(|meta| meta.term);
        }
        self.entries
            .get((index.0 - self.offset.0) as usize)
            .map(|entry| entry.term)
    }

    /// Drops entries up to `index` once storage holds them, if the entry at
    /// `index` still has `term` (it may have been replaced meanwhile).
    pub fn stable_to(&mut self, index: LogIndex, term: Term) {
        if self.term(index) == Some(term) && index >= self.offset {
            let count = (index.0 - self.offset.0 + 1) as usize;
            self.entries.drain(..count);
            self.offset = index.next();
        }
    }

    /// Forgets the snapshot at `index` once storage installed it.
    pub fn stable_snapshot_to(&mut self, index: LogIndex) {
        if self
            .snapshot
            .as_ref()
            .is_some_and(|meta| meta.index == index)
        {
            self.snapshot = None;
        }
    }

    /// Replaces everything with a snapshot.
    pub fn restore(&mut self, meta: SnapshotMeta) {
        self.offset = meta.index.next();
        self.entries.clear();
        self.snapshot = Some(meta);
    }

    /// Appends entries, first truncating every entry at or after the first
    /// new index.
    pub fn truncate_and_append(&mut self, new_entries: &[Entry]) {
        let Some(first) = new_entries.first() else {
            return;
        };
        let after = first.index;
        if after.0 == self.offset.0 + self.entries.len() as u64 {
            // The common case: a direct continuation.
        } else if after <= self.offset {
            // Replaces the whole unstable part (and storage's suffix, which
            // the next persist truncates).
            self.offset = after;
            self.entries.clear();
        } else {
            self.entries.truncate((after.0 - self.offset.0) as usize);
        }
        self.entries.extend_from_slice(new_entries);
    }
}
