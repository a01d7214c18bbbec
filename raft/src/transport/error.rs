//! Errors of the transport: a peer's message that cannot become a core
//! [`Message`](crate::core::Message) ([`ConvertError`]), and the reasons the
//! server refuses a stream ([`TransportError`]), mapped to gRPC statuses by
//! one function, [`TransportError::to_status`], and why the node's inbound
//! queue did not take a message ([`Refused`]).
//!
//! Invariants:
//! - Decoding a peer's message never panics: every malformed input maps to a
//!   [`ConvertError`] variant that names the offending field or value.
//! - Both refusals a peer can cause (wrong group, malformed message) are
//!   `INVALID_ARGUMENT`; only a stopped node is `UNAVAILABLE`, which the
//!   sender treats as "retry later".

use thiserror::Error;
use tonic::Status;

/// Why a `raft.v1.Message` is malformed.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ConvertError {
    /// The message has no body (the `oneof` is unset).
    #[error("message has no body")]
    MissingBody,
    /// A required sub-message is absent.
    #[error("missing field {field}")]
    MissingField {
        /// The field's path, e.g. `snapshot_chunk.meta`.
        field: &'static str,
    },
    /// A node id is 0, which names no replica.
    #[error("node id 0 in field {field}")]
    ZeroNodeId {
        /// The field that holds the id.
        field: &'static str,
    },
    /// An entry's kind is not a known `EntryKind` value.
    #[error("unknown entry kind {value} at index {index}")]
    UnknownEntryKind {
        /// The entry's index.
        index: u64,
        /// The unknown enum value.
        value: i32,
    },
    /// A membership-change entry's payload does not decode.
    #[error("malformed membership change in entry {index}")]
    MalformedConfChange {
        /// The entry's index.
        index: u64,
    },
    /// Entries of an append do not follow `prev_index` one by one.
    #[error("entry index {actual} where {expected} was expected")]
    NonContiguousEntries {
        /// The index that should come next.
        expected: u64,
        /// The index found.
        actual: u64,
    },
    /// A node is listed twice in a membership.
    #[error("node {node} listed twice in a membership")]
    DuplicateMember {
        /// The repeated node.
        node: u64,
    },
}

/// Why the server refuses a stream of batches.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum TransportError {
    /// The batch belongs to another Raft group: the sender is misconfigured.
    #[error("batch for raft group {sent} sent to a server of raft group {served}")]
    GroupMismatch {
        /// The group named in the batch.
        sent: u64,
        /// The group this server serves.
        served: u64,
    },
    /// A message of the batch is malformed.
    #[error("malformed raft message: {0}")]
    Malformed(#[from] ConvertError),
    /// The node behind the server has stopped taking messages.
    #[error("raft node of group {group} has stopped")]
    NodeStopped {
        /// The group this server serves.
        group: u64,
    },
}

impl TransportError {
    /// Returns the gRPC status that tells the peer about this error.
    pub fn to_status(&self) -> Status {
        match self {
            TransportError::GroupMismatch { .. } | TransportError::Malformed(_) => {
                Status::invalid_argument(self.to_string())
            }
            TransportError::NodeStopped { .. } => Status::unavailable(self.to_string()),
        }
    }
}

/// Why the node's inbound queue did not take a peer's message (the message
/// is then dropped; Raft resends).
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The queue holds as many messages, or bytes, as it may.
    #[error("the inbound queue is full")]
    Full,
    /// The node stopped: nothing reads the queue any more.
    #[error("the node stopped")]
    Closed,
}
