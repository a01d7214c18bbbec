//! Errors a caller of a running node gets (STYLE D: API errors apart from
//! fatal ones). A fatal storage failure stops the node; callers then see
//! [`ProposeError::Stopped`].

use thiserror::Error;

use crate::core::{LogIndex, NodeId};

/// Why a request to a running node did not succeed.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ProposeError {
    /// This node does not lead; retry at the hinted leader if any. For a
    /// proposal this is definite: it was not (and will not be) applied.
    #[error("not the leader (leader hint: {leader_hint:?})")]
    NotLeader {
        /// The leader this node believes in.
        leader_hint: Option<NodeId>,
    },
    /// Too many requests, or too many bytes of them, are in flight; retry
    /// later. Nothing was proposed.
    #[error("overloaded: {in_flight} requests of {bytes_in_flight} bytes in flight")]
    Overloaded {
        /// The requests in flight when refused (waiting in the queue, or
        /// proposed and not yet applied, whichever budget refused).
        in_flight: usize,
        /// Their payload bytes.
        bytes_in_flight: u64,
    },
    /// No answer within the deadline; a proposal may or may not apply.
    #[error("timed out after {millis} ms")]
    Timeout {
        /// The deadline, in milliseconds.
        millis: u64,
    },
    /// The proposal's index was covered by a snapshot from the leader
    /// before it applied here: it may or may not have been applied (like
    /// `Timeout`).
    #[error("outcome unknown: index {index} was replaced by a snapshot before it applied")]
    OutcomeUnknown {
        /// The proposal's index.
        index: LogIndex,
    },
    /// The node has stopped (shutdown or fatal error).
    #[error("the raft node has stopped")]
    Stopped,
    /// The core refused the request (invalid membership change, transfer
    /// in progress...).
    #[error("refused: {0}")]
    Refused(String),
}

impl ProposeError {
    /// Maps a core error to the caller-facing one.
    pub fn from_core(error: crate::core::Error) -> ProposeError {
        match error {
            crate::core::Error::NotLeader { leader_hint } => {
                ProposeError::NotLeader { leader_hint }
            }
            other => ProposeError::Refused(other.to_string()),
        }
    }
}
