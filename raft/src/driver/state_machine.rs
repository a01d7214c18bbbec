//! The narrow interface between a running node and its application.
//!
//! # Correctness
//! - `apply_batch` is called for every committed entry exactly once per
//!   index in log order, after the entry is durable in the log; an
//!   implementation that persists its state must write the entries' effects
//!   and the applied index atomically (DESIGN.md "Storage layout"), so that
//!   `applied_index` after a restart names the last entry applied. A batch
//!   holds at most one membership entry, and only as its last.
//! - A restore is `begin_restore`, `restore_chunk` for each chunk in
//!   order, then `finish_restore`; the driver calls `finish_restore` only
//!   after the whole snapshot was read and checked. Until `finish_restore`
//!   no state may be taken as the state at the snapshot's index: the
//!   applied index, in memory and as stored, stays below it (a persistent
//!   application that writes restored data before the end marks the state
//!   as being restored, durably, and answers 0), so after a failure or a
//!   restart the node restores again or refuses to start, and never serves
//!   a partly restored state. The snapshot's index becomes the applied
//!   index only in `finish_restore`.
//! - `snapshot` returns the state at `applied_index` as bounded chunks.

use bytes::Bytes;

use crate::core::{Entry, LogIndex, StorageError};

/// An application replicated by Raft.
pub trait StateMachine: Send + 'static {
    /// What applying an entry answers to its proposer.
    type Output: Send + 'static;

    /// Returns the index of the last entry applied (durably, for a
    /// persistent application); the node resumes after it.
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

    /// Returns the state at `applied_index` as a sequence of bounded
    /// chunks, produced lazily so the state is never held whole.
    fn snapshot(&self) -> Box<dyn Iterator<Item = Bytes> + '_>;

    /// Starts replacing the state with the snapshot taken at `index`. Until
    /// [`StateMachine::finish_restore`], `applied_index` (and the one a
    /// restart would read) stays below `index`; the current state may be
    /// dropped now or at the end.
    ///
    /// # Errors
    /// [`StorageError`] if the state cannot be written.
    fn begin_restore(&mut self, index: LogIndex) -> Result<(), StorageError>;

    /// Adds the next chunk of the snapshot being restored.
    ///
    /// # Errors
    /// [`StorageError::Corruption`] if the chunk cannot be decoded, or
    /// another [`StorageError`] if it cannot be written.
    fn restore_chunk(&mut self, chunk: Bytes) -> Result<(), StorageError>;

    /// Ends a restore whose every chunk was added: the state is the
    /// snapshot's, and `index` becomes the applied index.
    ///
    /// # Errors
    /// [`StorageError::Corruption`] if the chunks do not form a valid
    /// state, or another [`StorageError`] if it cannot be written.
    fn finish_restore(&mut self, index: LogIndex) -> Result<(), StorageError>;

    /// Returns a job that produces the same chunks as `snapshot` on
    /// another thread, or `None` (the default) to snapshot on the node's
    /// thread. An application whose state lives in RocksDB offers one, so
    /// copying a large state never stalls the node.
    fn snapshot_job(&self) -> Option<Box<dyn SnapshotJob>> {
        None
    }
}

/// Produces a snapshot of an application's state on another thread.
pub trait SnapshotJob: Send + 'static {
    /// Pins a consistent view of the state, then calls `pinned` (the node
    /// waits for that call, so the view is the state at the applied index
    /// of the moment the job was made), then hands every chunk to `sink`
    /// in order, stopping at the sink's first error, which it returns.
    ///
    /// # Errors
    /// The sink's error, or [`StorageError::Io`] if reading fails.
    fn run(
        self: Box<Self>,
        pinned: &mut dyn FnMut(),
        sink: &mut dyn FnMut(Bytes) -> Result<(), StorageError>,
    ) -> Result<(), StorageError>;
}
