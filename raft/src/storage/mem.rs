//! An in-memory [`Storage`] for tests and the simulator.
//!
//! Invariant: `entries[i].index == snapshot.index + 1 + i` (the log is
//! contiguous right after the compacted prefix).

use crate::core::storage::{InitialState, PersistBatch, Storage, limit_size};
use crate::core::{Entry, HardState, LogIndex, Membership, SnapshotMeta, StorageError, Term};

/// Log and hard state held in memory.
#[derive(Clone, Debug, Default)]
pub struct MemStorage {
    hard_state: HardState,
    /// The hard state as of the last synced write: what a power failure
    /// leaves (see [`MemStorage::lose_unsynced`]).
    synced_hard_state: HardState,
    /// The compacted prefix: the entries up to its index are gone.
    snapshot: SnapshotMeta,
    /// The membership saved after the latest applied change, and its index.
    saved_membership: Option<(Membership, LogIndex)>,
    /// Invariant: contiguous from `snapshot.index + 1`.
    entries: Vec<Entry>,
}

impl MemStorage {
    /// Returns the storage of a node bootstrapping a group with `membership`:
    /// an empty snapshot at index 1, term 1 carries it, so a node joining
    /// later (whose log is empty, at index 0) always receives a snapshot
    /// and with it the membership. With an empty membership the node is a
    /// joiner: it starts at index 0 and learns everything from the leader.
    pub fn new(membership: Membership) -> MemStorage {
        let bootstrap = !membership.voters.is_empty();
        let (index, term) = if bootstrap {
            (LogIndex(1), Term(1))
        } else {
            (LogIndex(0), Term(0))
        };
        MemStorage {
            snapshot: SnapshotMeta {
                index,
                term,
                membership,
            },
            ..MemStorage::default()
        }
    }

    /// Loses what a power failure loses: the writes after the last synced
    /// one. Only a new commit index is ever written unsynced
    /// ([`PersistBatch::must_sync`]), so the commit index goes back.
    pub fn lose_unsynced(&mut self) {
        self.hard_state = self.synced_hard_state;
    }

    /// Installs a restored snapshot (§7): keeps the entries after it if the
    /// log holds its last entry, drops every entry otherwise.
    fn install(&mut self, meta: &SnapshotMeta) {
        if self.holds_last_entry_of(meta) {
            let covered = (meta.index.0 - self.snapshot.index.0) as usize;
            self.entries.drain(..covered);
        } else {
            self.entries.clear();
        }
        self.snapshot = meta.clone();
    }

    fn holds_last_entry_of(&self, meta: &SnapshotMeta) -> bool {
        meta.index >= self.snapshot.index
            && self.term(meta.index).is_ok_and(|term| term == meta.term)
    }

    /// Checks that `entries` can follow the log as it will be once
    /// `snapshot` (if any) is installed, so a batch fails before it
    /// changes anything.
    fn check_append(
        &self,
        snapshot: Option<&SnapshotMeta>,
        entries: &[Entry],
    ) -> Result<(), StorageError> {
        let Some(first) = entries.first() else {
            return Ok(());
        };
        let (prefix, last) = match snapshot {
            Some(meta) if self.holds_last_entry_of(meta) => (meta.index, self.last_index()),
            Some(meta) => (meta.index, meta.index),
            None => (self.snapshot.index, self.last_index()),
        };
        if first.index <= prefix || first.index > last.next() {
            return Err(StorageError::Io(format!(
                "append at {} outside the log ({}..={last})",
                first.index,
                prefix.next(),
            )));
        }
        Ok(())
    }

    fn append(&mut self, entries: &[Entry]) {
        let Some(first) = entries.first() else {
            return;
        };
        let keep = (first.index.0 - self.snapshot.index.0 - 1) as usize;
        self.entries.truncate(keep);
        self.entries.extend_from_slice(entries);
    }
}

impl Storage for MemStorage {
    fn hard_state(&self) -> HardState {
        self.hard_state
    }

    fn initial_state(&self) -> Result<InitialState, StorageError> {
        let membership = match &self.saved_membership {
            Some((membership, index)) if *index >= self.snapshot.index => membership.clone(),
            _ => self.snapshot.membership.clone(),
        };
        Ok(InitialState {
            hard_state: self.hard_state,
            membership,
        })
    }

    fn entries(
        &self,
        low: LogIndex,
        high: LogIndex,
        bytes_max: u64,
    ) -> Result<Vec<Entry>, StorageError> {
        if low <= self.snapshot.index {
            return Err(StorageError::Compacted);
        }
        assert!(
            high <= self.last_index().next(),
            "entries past the log end: {high}"
        );
        let start = (low.0 - self.snapshot.index.0 - 1) as usize;
        let end = (high.0 - self.snapshot.index.0 - 1) as usize;
        Ok(limit_size(&self.entries[start..end], bytes_max))
    }

    fn term(&self, index: LogIndex) -> Result<Term, StorageError> {
        if index < self.snapshot.index {
            return Err(StorageError::Compacted);
        }
        if index == self.snapshot.index {
            return Ok(self.snapshot.term);
        }
        let offset = (index.0 - self.snapshot.index.0 - 1) as usize;
        self.entries
            .get(offset)
            .map(|entry| entry.term)
            .ok_or_else(|| StorageError::Io(format!("term of index {index} past the log end")))
    }

    fn first_index(&self) -> LogIndex {
        self.snapshot.index.next()
    }

    fn last_index(&self) -> LogIndex {
        LogIndex(self.snapshot.index.0 + self.entries.len() as u64)
    }

    fn snapshot_meta(&self) -> SnapshotMeta {
        self.snapshot.clone()
    }

    fn persist(&mut self, batch: &PersistBatch<'_>) -> Result<(), StorageError> {
        self.check_append(batch.snapshot, batch.entries)?;
        if let Some(meta) = batch.snapshot {
            self.install(meta);
        }
        let sync = batch.must_sync(&self.hard_state);
        self.append(batch.entries);
        if let Some(hard_state) = batch.hard_state {
            self.hard_state = *hard_state;
        }
        if sync {
            self.synced_hard_state = self.hard_state;
        }
        Ok(())
    }

    fn compact(&mut self, index: LogIndex, membership: Membership) -> Result<(), StorageError> {
        if index <= self.snapshot.index {
            return Ok(());
        }
        let term = self.term(index)?;
        let covered = (index.0 - self.snapshot.index.0) as usize;
        self.entries.drain(..covered);
        self.snapshot = SnapshotMeta {
            index,
            term,
            membership,
        };
        // Compaction is a synced write: it makes everything before durable.
        self.synced_hard_state = self.hard_state;
        Ok(())
    }

    /// A synced write, like RocksDB's: the commit index that covers the
    /// change survives a power failure.
    fn save_membership(
        &mut self,
        membership: &Membership,
        index: LogIndex,
    ) -> Result<(), StorageError> {
        self.saved_membership = Some((membership.clone(), index));
        self.synced_hard_state = self.hard_state;
        Ok(())
    }
}
