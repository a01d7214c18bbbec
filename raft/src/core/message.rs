//! The messages Raft peers exchange. The core produces them in
//! [`Ready::messages`](crate::core::Ready) and consumes them in
//! [`Node::step`](crate::core::Node::step); the transport carries them as
//! `raft.v1.Message` protocol buffers.

use bytes::Bytes;

use crate::core::types::{Entry, LogIndex, NodeId, SnapshotMeta, Term};

/// A message between two replicas of one group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The sender.
    pub from: NodeId,
    /// The recipient.
    pub to: NodeId,
    /// The sender's term (for a granted pre-vote: the term it grants).
    pub term: Term,
    /// What the message says.
    pub body: MessageBody,
}

/// The kinds of messages (Raft paper Figure 2, plus PreVote, heartbeats,
/// chunked snapshots and TimeoutNow).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MessageBody {
    /// A (pre-)vote request from a (pre-)candidate.
    RequestVote {
        /// Index of the candidate's last entry.
        last_index: LogIndex,
        /// Term of the candidate's last entry.
        last_term: Term,
        /// A PreVote probe: grants change no state (dissertation §9.6).
        pre_vote: bool,
        /// Sent after TimeoutNow: voters ignore their leader lease.
        leadership_transfer: bool,
    },
    /// The answer to a [`MessageBody::RequestVote`].
    VoteResponse {
        /// Answers a pre-vote.
        pre_vote: bool,
        /// Whether the vote is granted.
        granted: bool,
        /// The responder's commit index (0 when it cannot name its term).
        commit: LogIndex,
        /// The term of the entry at `commit`: a candidate whose log holds
        /// that entry holds the whole committed prefix (Log Matching) and
        /// may commit it, even with no leader to tell it.
        commit_term: Term,
    },
    /// Log entries after `prev_index`, and the leader's commit index.
    AppendEntries {
        /// Index of the entry preceding `entries`.
        prev_index: LogIndex,
        /// Term of that entry.
        prev_term: Term,
        /// The entries, possibly none.
        entries: Vec<Entry>,
        /// The leader's commit index.
        commit: LogIndex,
    },
    /// The answer to an [`MessageBody::AppendEntries`].
    AppendResponse {
        /// Whether the follower refused the append (log mismatch).
        rejected: bool,
        /// On success the follower's last index matching the leader; on
        /// rejection the `prev_index` it refused.
        index: LogIndex,
        /// On rejection: the last index at or below the rejected one whose
        /// term is at most the leader's `prev_term` (fast backtracking).
        hint_index: LogIndex,
        /// The term at `hint_index`.
        hint_term: Term,
    },
    /// Leader liveness, commit propagation and ReadIndex confirmation.
    Heartbeat {
        /// `min(follower match, leader commit)`.
        commit: LogIndex,
        /// The ReadIndex round this heartbeat confirms (0 for none).
        read_round: u64,
    },
    /// The answer to a [`MessageBody::Heartbeat`].
    HeartbeatResponse {
        /// Echoes the heartbeat's round.
        read_round: u64,
    },
    /// One chunk of a snapshot, checked by crc32 on receipt.
    SnapshotChunk {
        /// The snapshot being sent.
        meta: SnapshotMeta,
        /// Where `data` starts in the application's state (empty: the
        /// beginning).
        cursor: Bytes,
        /// Where the next chunk starts.
        next_cursor: Bytes,
        /// The chunk's bytes.
        data: Bytes,
        /// crc32 of `data` (crc32fast).
        crc32: u32,
        /// Whether this chunk completes the snapshot.
        last: bool,
    },
    /// A follower restoring a snapshot tells where it stands: it answers
    /// every chunk, append and heartbeat so while its application holds a
    /// partial state, and the leader resumes (the same snapshot) or starts
    /// a new transfer.
    SnapshotChunkResponse {
        /// The snapshot being restored.
        snapshot_index: LogIndex,
        /// Its term.
        snapshot_term: Term,
        /// The position of the next chunk the follower needs.
        next_cursor: Bytes,
    },
    /// Tells the recipient to campaign at once (leadership transfer).
    TimeoutNow,
}

impl MessageBody {
    /// Returns a short name of the kind, for logs and metrics.
    pub fn kind_name(&self) -> &'static str {
        match self {
            MessageBody::RequestVote { pre_vote: true, .. } => "pre_vote",
            MessageBody::RequestVote { .. } => "vote",
            MessageBody::VoteResponse { pre_vote: true, .. } => "pre_vote_response",
            MessageBody::VoteResponse { .. } => "vote_response",
            MessageBody::AppendEntries { .. } => "append",
            MessageBody::AppendResponse { .. } => "append_response",
            MessageBody::Heartbeat { .. } => "heartbeat",
            MessageBody::HeartbeatResponse { .. } => "heartbeat_response",
            MessageBody::SnapshotChunk { .. } => "snapshot_chunk",
            MessageBody::SnapshotChunkResponse { .. } => "snapshot_chunk_response",
            MessageBody::TimeoutNow => "timeout_now",
        }
    }
}
