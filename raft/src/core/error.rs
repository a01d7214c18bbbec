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
    /// Restoring a snapshot into the application failed: it cannot decode
    /// or write what it got. The application's state stays marked as being
    /// restored, so the node never serves part of a snapshot; it stops, and
    /// on a later start it restores again.
    #[error(
        "cannot restore the snapshot at index {index} (term {term}) at position {position}: {detail}"
    )]
    SnapshotRestore {
        /// The index of the snapshot.
        index: LogIndex,
        /// The term of the snapshot.
        term: Term,
        /// Where in the application's state the failing chunk starts.
        position: String,
        /// What went wrong.
        detail: String,
    },
    /// The application's state is older than the compacted log: the
    /// entries that would bring it up to date are gone. Its state was lost
    /// (a data directory restored from an old backup, a damaged `meta`):
    /// the replica must be rebuilt from its peers.
    #[error(
        "the application's state is at index {applied}, but the log was compacted up to {compacted}: its state was lost; remove this replica's data directory and add it back to rebuild it from its peers"
    )]
    StateBehindLog {
        /// The application's applied index.
        applied: LogIndex,
        /// The last index the log compacted away.
        compacted: LogIndex,
    },
}

/// Describes a snapshot position (an application key) for messages:
/// printable bytes as text, others escaped; "the beginning" when empty.
pub fn describe_position(cursor: &[u8]) -> String {
    if cursor.is_empty() {
        return "the beginning".into();
    }
    format!("\"{}\"", cursor.escape_ascii())
}
