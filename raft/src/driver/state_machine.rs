//! The narrow interface between a running node and its application.
//!
//! # Correctness
//! - `apply_batch` is called for every committed entry exactly once per
//!   index in log order, after the entry is durable in the log; an
//!   implementation that persists its state must write the entries' effects
//!   and the applied index atomically (DESIGN.md "Storage layout"), so that
//!   `applied_index` after a restart names the last entry applied. A batch
//!   holds at most one membership entry, and only as its last.
//! - `restore` replaces the whole state with a snapshot's; `snapshot`
//!   returns the state at `applied_index` as bounded chunks.

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

    /// Replaces the state with a snapshot's chunks, taken at `index`.
    fn restore(&mut self, index: LogIndex, chunks: &mut dyn Iterator<Item = Bytes>);

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
