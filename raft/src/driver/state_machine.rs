//! The narrow interface between a running node and its application.
//!
//! # Correctness
//! - `apply` is called for every committed entry exactly once per index in
//!   log order, after the entry is durable in the log; an implementation
//!   that persists its state must write the entry's effects and the
//!   applied index atomically (DESIGN.md "Storage layout"), so that
//!   `applied_index` after a restart names the last entry applied.
//! - `restore` replaces the whole state with a snapshot's; `snapshot`
//!   returns the state at `applied_index` as bounded chunks.

use bytes::Bytes;

use crate::core::{Entry, LogIndex};

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

    /// Returns the state at `applied_index` as a sequence of bounded
    /// chunks, produced lazily so the state is never held whole.
    fn snapshot(&self) -> Box<dyn Iterator<Item = Bytes> + '_>;

    /// Replaces the state with a snapshot's chunks, taken at `index`.
    fn restore(&mut self, index: LogIndex, chunks: &mut dyn Iterator<Item = Bytes>);
}
