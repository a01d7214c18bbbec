//! An in-memory [`Storage`] for tests and the simulator.
//!
//! Invariants:
//! - `entries[i].index == snapshot.index + 1 + i` (the log is contiguous
//!   right after the snapshot).
//! - The staged snapshot, if any, holds chunks from offset 0 without gaps.

use bytes::Bytes;

use crate::core::{Entry, HardState, LogIndex, Membership, SnapshotMeta, StorageError, Term};
use crate::storage::{InitialState, PersistBatch, Storage};

/// Log, hard state and snapshot held in memory.
#[derive(Clone, Debug, Default)]
pub struct MemStorage {
    hard_state: HardState,
    /// The hard state as of the last synced write: what a power failure
    /// leaves (see [`MemStorage::lose_unsynced`]).
    synced_hard_state: HardState,
    snapshot: SnapshotMeta,
    snapshot_data: Bytes,
    /// Invariant: contiguous from `snapshot.index + 1`.
    entries: Vec<Entry>,
    staged: Option<(SnapshotMeta, Vec<u8>)>,
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

    /// Records a snapshot of the application state at `index` (which must be
    /// applied, hence stored) and drops the entries it covers.
    ///
    /// # Panics
    /// Panics if `index` is not in `(snapshot index, last index]`.
    pub fn create_snapshot(&mut self, index: LogIndex, membership: Membership, data: Bytes) {
        assert!(
            index > self.snapshot.index && index <= self.last_index(),
            "snapshot index {index} outside ({}, {}]",
            self.snapshot.index,
            self.last_index()
        );
        let offset = (index.0 - self.snapshot.index.0) as usize;
        let term = self.entries[offset - 1].term;
        self.entries.drain(..offset);
        self.snapshot = SnapshotMeta {
            index,
            term,
            membership,
        };
        self.snapshot_data = data;
        // Compaction is a synced write: it makes everything before durable.
        self.synced_hard_state = self.hard_state;
    }

    /// Returns the bytes of the latest snapshot.
    pub fn snapshot_data(&self) -> Bytes {
        self.snapshot_data.clone()
    }

    /// Loses what a power failure loses: the writes after the last synced
    /// one. Only a new commit index is ever written unsynced
    /// ([`PersistBatch::must_sync`]), so the commit index goes back.
    pub fn lose_unsynced(&mut self) {
        self.hard_state = self.synced_hard_state;
    }

    fn stage_chunk(&mut self, chunk: &crate::core::SnapshotChunk) -> Result<(), StorageError> {
        if chunk.offset == 0 {
            self.staged = Some((chunk.meta.clone(), Vec::new()));
        }
        match &mut self.staged {
            Some((meta, data)) if *meta == chunk.meta && data.len() as u64 == chunk.offset => {
                data.extend_from_slice(&chunk.data);
                Ok(())
            }
            _ => Err(StorageError::Io(format!(
                "snapshot chunk at offset {} does not follow the staged data",
                chunk.offset
            ))),
        }
    }

    fn install_staged(&mut self, meta: &SnapshotMeta) -> Result<(), StorageError> {
        match self.staged.take() {
            Some((staged_meta, data)) if staged_meta == *meta => {
                self.snapshot = staged_meta;
                self.snapshot_data = Bytes::from(data);
                self.entries.clear();
                Ok(())
            }
            _ => Err(StorageError::SnapshotUnavailable(meta.index)),
        }
    }

    fn append(&mut self, entries: &[Entry]) -> Result<(), StorageError> {
        let Some(first) = entries.first() else {
            return Ok(());
        };
        if first.index <= self.snapshot.index || first.index > self.last_index().next() {
            return Err(StorageError::Io(format!(
                "append at {} outside the log ({}..={})",
                first.index,
                self.snapshot.index.next(),
                self.last_index()
            )));
        }
        let keep = (first.index.0 - self.snapshot.index.0 - 1) as usize;
        self.entries.truncate(keep);
        self.entries.extend_from_slice(entries);
        Ok(())
    }
}

impl Storage for MemStorage {
    fn hard_state(&self) -> HardState {
        self.hard_state
    }

    fn initial_state(&self) -> Result<InitialState, StorageError> {
        Ok(InitialState {
            hard_state: self.hard_state,
            membership: self.snapshot.membership.clone(),
            staged_snapshot: self
                .staged
                .as_ref()
                .map(|(meta, data)| (meta.clone(), data.len() as u64)),
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

    fn snapshot_chunk(
        &self,
        index: LogIndex,
        offset: u64,
        bytes_max: u64,
    ) -> Result<(Bytes, bool), StorageError> {
        if index != self.snapshot.index {
            return Err(StorageError::SnapshotUnavailable(index));
        }
        let length = self.snapshot_data.len() as u64;
        let start = offset.min(length);
        let end = start.saturating_add(bytes_max).min(length);
        Ok((
            self.snapshot_data.slice(start as usize..end as usize),
            end == length,
        ))
    }

    fn persist(&mut self, batch: &PersistBatch<'_>) -> Result<(), StorageError> {
        for chunk in batch.snapshot_chunks {
            self.stage_chunk(chunk)?;
        }
        if let Some(meta) = batch.snapshot {
            self.install_staged(meta)?;
        }
        let sync = batch.must_sync(&self.hard_state);
        self.append(batch.entries)?;
        if let Some(hard_state) = batch.hard_state {
            self.hard_state = *hard_state;
        }
        if sync {
            self.synced_hard_state = self.hard_state;
        }
        Ok(())
    }

    /// Keeps no membership (a restart replays from the snapshot), but is a
    /// synced write like RocksDB's: the commit index that covers the
    /// change survives a power failure, so the change is replayed.
    fn save_membership(
        &mut self,
        _membership: &Membership,
        _index: LogIndex,
    ) -> Result<(), StorageError> {
        self.synced_hard_state = self.hard_state;
        Ok(())
    }
}

/// Returns the longest prefix of `entries` within `bytes_max`, but at least
/// one entry.
pub(crate) fn limit_size(entries: &[Entry], bytes_max: u64) -> Vec<Entry> {
    let mut total = 0u64;
    let mut count = 0;
    for entry in entries {
        total += entry.size_bytes();
        if count > 0 && total > bytes_max {
            break;
        }
        count += 1;
    }
    entries[..count].to_vec()
}
