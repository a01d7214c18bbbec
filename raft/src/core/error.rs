//! Errors of the Raft core. API errors ([`Error`]) tell a caller what to do
//! next; storage errors ([`StorageError`]) other than `Compacted` and
//! `SnapshotUnavailable` are fatal to the node.

use thiserror::Error;

use crate::core::types::{LogIndex, NodeId, Term};

/// Why a request to the core was refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum Error {
    /// This node is not the leader; try the hinted leader if known.
    #[error("not the leader (leader hint: {leader_hint:?})")]
    NotLeader {
        /// The leader this node believes in, if any.
        leader_hint: Option<NodeId>,
    },
    /// The leader is handing leadership over and takes no proposals.
    #[error("leadership transfer in progress")]
    TransferInProgress,
    /// A membership change is still being applied; one at a time.
    #[error("a membership change is pending at index {pending_index}")]
    ConfChangePending {
        /// The index of the pending change.
        pending_index: LogIndex,
    },
    /// The membership change makes no sense against the current membership.
    #[error("invalid membership change: {0}")]
    InvalidConfChange(String),
    /// The configuration is invalid.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// Reading the durable state failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// A failure of the durable log storage.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum StorageError {
    /// The requested index is below the first index (replaced by a snapshot).
    #[error("log compacted below the requested index")]
    Compacted,
    /// The requested snapshot is not (or no longer) the current one.
    #[error("snapshot at index {0} is not available")]
    SnapshotUnavailable(LogIndex),
    /// Stored bytes failed their checksum or could not be decoded.
    #[error("corruption at index {index} in {location}: {detail}")]
    Corruption {
        /// The log index (or snapshot index) whose record is bad.
        index: LogIndex,
        /// Where the record lives (file, column family).
        location: String,
        /// What is wrong (e.g. expected and actual crc32).
        detail: String,
    },
    /// The storage engine failed.
    #[error("storage I/O error: {0}")]
    Io(String),
    /// Restoring the application from the installed snapshot failed (a
    /// chunk is corrupt or missing, the stream ends early, or the
    /// application cannot read what it got). The application's state is
    /// marked as not restored, so the node refuses to start on it until an
    /// operator acts: it never serves part of a snapshot.
    #[error(
        "cannot restore the snapshot at index {index} (term {term}) at byte {position} of its data: {detail}"
    )]
    SnapshotRestore {
        /// The index of the snapshot.
        index: LogIndex,
        /// The term of the snapshot.
        term: Term,
        /// How many bytes of the snapshot's data were restored before the
        /// failure.
        position: u64,
        /// What went wrong.
        detail: String,
    },
}
