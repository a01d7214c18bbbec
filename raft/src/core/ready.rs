//! The output of the core: one [`Ready`] batch at a time.
//!
//! # The Ready contract
//! The owner of a node loops: take a `Ready`, then
//! 0. optionally, send the leader's appends first
//!    ([`Ready::take_early_messages`]), so followers write in parallel with
//!    the leader;
//! 1. persist `snapshot_chunks`, `snapshot`, `entries` and `hard_state`
//!    with **one write**, synced unless only the commit index changed
//!    ([`Storage::persist`](crate::storage::Storage::persist));
//! 2. send `messages` (only now: they may acknowledge what step 1 made
//!    durable);
//! 3. if `snapshot` is set, restore the application from it; then apply
//!    `committed_entries` in order and answer `read_states` once the
//!    applied index reaches theirs;
//! 4. call `advance`.
//!
//! No other input may reach the node between `ready` and `advance`.

use crate::core::message::{Message, MessageBody};
use crate::core::raft::Role;
use crate::core::types::{Entry, HardState, LogIndex, NodeId, SnapshotChunk, SnapshotMeta};

/// Volatile state worth reporting when it changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SoftState {
    /// The leader this node knows of.
    pub leader: Option<NodeId>,
    /// This node's role.
    pub role: Role,
}

/// A confirmed linearizable read: answer it once the applied index reaches
/// `index`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadState {
    /// The commit index at the time of the request.
    pub index: LogIndex,
    /// The caller's context passed to `read_index`.
    pub context: u64,
}

/// Everything the core asks its owner to do, in the order of the contract.
#[derive(Debug, Default)]
pub struct Ready {
    /// Set when role or leader changed.
    pub soft_state: Option<SoftState>,
    /// Set when term, vote or commit changed.
    pub hard_state: Option<HardState>,
    /// Snapshot chunks to stage (a chunk at offset 0 restarts staging).
    pub snapshot_chunks: Vec<SnapshotChunk>,
    /// Install the staged snapshot: it replaces the log and the
    /// application's state.
    pub snapshot: Option<SnapshotMeta>,
    /// Entries to append durably.
    pub entries: Vec<Entry>,
    /// Messages to send after persisting.
    pub messages: Vec<Message>,
    /// Entries to apply, in order, after persisting.
    pub committed_entries: Vec<Entry>,
    /// Reads confirmed by a heartbeat quorum.
    pub read_states: Vec<ReadState>,
}

impl Ready {
    /// Removes and returns the messages that may leave before this Ready is
    /// persisted: the leader's appends (dissertation §10.2.1). They
    /// acknowledge nothing, and the leader counts its own log toward a
    /// commit only once its write is durable (at `advance`), so an entry
    /// still commits only when a quorum holds it durably.
    pub fn take_early_messages(&mut self) -> Vec<Message> {
        self.messages
            .extract_if(.., |message| {
                matches!(message.body, MessageBody::AppendEntries { .. })
            })
            .collect()
    }

    /// Returns the batch to persist for this Ready.
    pub fn persist_batch(&self) -> crate::storage::PersistBatch<'_> {
        crate::storage::PersistBatch {
            hard_state: self.hard_state.as_ref(),
            snapshot_chunks: &self.snapshot_chunks,
            snapshot: self.snapshot.as_ref(),
            entries: &self.entries,
        }
    }
}
