//! The narrow interface between a running node and its application.
//!
//! # Correctness
//! - `apply_batch` is called for every committed entry exactly once per
//!   index in log order, after the entry is durable in the log; an
//!   implementation that persists its state must write the entries' effects
//!   and the applied index atomically (DESIGN.md "Storage layout"), so that
//!   `applied_index` after a restart names the last entry applied. A batch
//!   holds at most one membership entry, and only as its last.
//! - The application's state is the snapshot: the log is compacted below
//!   the applied index without copying anything, and a follower that needs
//!   the compacted entries gets the state itself, read from a consistent
//!   view pinned by [`StateMachine::snapshot_source`].
//! - A restore is `begin_restore`, `restore_chunk` for each chunk but the
//!   last, then `finish_restore` with the last one. From `begin_restore`
//!   until `finish_restore` the application marks its state as being
//!   restored, in the same writes as the restored data (one WAL: a power
//!   failure loses a mark only with the data it describes) ([`StateMachine::restoring`] returns the snapshot and
//!   the position of the next chunk needed), so a node that stops
//!   mid-restore resumes or restarts the restore and never applies entries
//!   to, or serves, a partial state. `finish_restore` writes the last
//!   chunk, drops the mark and makes the snapshot's index the applied index
//!   in one atomic, synced write: the node acknowledges the snapshot to its
//!   leader right after, and a leader told so never sends it again.

use bytes::Bytes;

use crate::core::{Entry, LogIndex, RestorePoint, StorageError, Term};

/// An application replicated by Raft.
pub trait StateMachine: Send + 'static {
    /// What applying an entry answers to its proposer.
    type Output: Send + 'static;

    /// Returns the index of the last entry applied (durably, for a
    /// persistent application); the node resumes after it. Meaningless
    /// while [`StateMachine::restoring`] returns a restore.
    fn applied_index(&self) -> LogIndex;

    /// Applies one committed entry (empty and membership entries included,
    /// so the applied index advances) and returns the proposer's answer.
    fn apply(&mut self, entry: &Entry) -> Self::Output;

    /// Applies consecutive committed entries and returns one answer per
    /// entry, in order. The default applies them one by one; a persistent
    /// application should override it to write the whole run (effects and
    /// the last applied index) at once, which is what makes a busy node's
    /// apply cost one write per batch instead of one per entry.
    fn apply_batch(&mut self, entries: &[Entry]) -> Vec<Self::Output> {
        entries.iter().map(|entry| self.apply(entry)).collect()
    }

    /// Pins a consistent view of the state at `applied_index` and returns
    /// a reader of it that works from any thread. The view stays pinned
    /// until the reader is dropped.
    ///
    /// # Errors
    /// [`StorageError::Io`] if the view cannot be pinned.
    fn snapshot_source(&self) -> Result<Box<dyn SnapshotSource>, StorageError>;

    /// Returns the restore under way when the node stopped (durably
    /// marked), if any.
    fn restoring(&self) -> Option<RestorePoint>;

    /// Starts replacing the state with the snapshot `(index, term)`: drops
    /// the current state (and any earlier partial restore) and marks the
    /// state durably as being restored from the beginning.
    ///
    /// # Errors
    /// [`StorageError`] if the state cannot be written.
    fn begin_restore(&mut self, index: LogIndex, term: Term) -> Result<(), StorageError>;

    /// Writes the next chunk of the restore under way (not the last), and
    /// records `next_cursor` as the position the restore resumes at.
    ///
    /// # Errors
    /// [`StorageError::Corruption`] if the chunk cannot be decoded, or
    /// another [`StorageError`] if it cannot be written.
    fn restore_chunk(&mut self, data: Bytes, next_cursor: Bytes) -> Result<(), StorageError>;

    /// Writes the last chunk of the restore of the snapshot at `index`,
    /// drops the restoring mark and makes `index` the applied index, in one
    /// atomic write, durable (synced) when this returns.
    ///
    /// # Errors
    /// [`StorageError::Corruption`] if the chunk cannot be decoded, or
    /// another [`StorageError`] if it cannot be written.
    fn finish_restore(&mut self, index: LogIndex, data: Bytes) -> Result<(), StorageError>;
}

/// One chunk read from a pinned view of an application's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotPiece {
    /// The chunk, in the application's encoding (whole records).
    pub data: Bytes,
    /// The position of the next chunk.
    pub next_cursor: Bytes,
    /// Whether this chunk ends the state.
    pub last: bool,
}

/// A reader of a pinned view of an application's state, in chunks
/// addressed by opaque positions (cursors).
pub trait SnapshotSource: Send + 'static {
    /// Reads the chunk that starts at `cursor` (empty: the beginning),
    /// about `bytes_max` bytes (more only for a single record larger than
    /// that).
    ///
    /// # Errors
    /// [`StorageError::Io`] if the view cannot be read, or
    /// [`StorageError::Corruption`] if `cursor` was not made by this
    /// application.
    fn read(&mut self, cursor: &[u8], bytes_max: u64) -> Result<SnapshotPiece, StorageError>;
}

/// A state encoded whole in memory (a small application's), read in
/// chunks by byte position: the cursor is the offset, u64 big-endian.
#[derive(Clone, Debug)]
pub struct EncodedSnapshot {
    encoded: Bytes,
}

impl EncodedSnapshot {
    /// Returns a source over `encoded`.
    pub fn new(encoded: Bytes) -> EncodedSnapshot {
        EncodedSnapshot { encoded }
    }
}

impl SnapshotSource for EncodedSnapshot {
    fn read(&mut self, cursor: &[u8], bytes_max: u64) -> Result<SnapshotPiece, StorageError> {
        let offset = match cursor {
            [] => 0,
            bytes => {
                u64::from_be_bytes(bytes.try_into().map_err(|_| StorageError::Corruption {
                    index: LogIndex(0),
                    location: "snapshot position".into(),
                    detail: format!("a byte offset has {} bytes, expected 8", bytes.len()),
                })?)
            }
        };
        let length = self.encoded.len() as u64;
        let start = offset.min(length);
        let end = start.saturating_add(bytes_max.max(1)).min(length);
        Ok(SnapshotPiece {
            data: self.encoded.slice(start as usize..end as usize),
            next_cursor: Bytes::copy_from_slice(&end.to_be_bytes()),
            last: end == length,
        })
    }
}
