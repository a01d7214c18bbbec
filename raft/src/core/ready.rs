//! The output of the core: one [`Ready`] batch at a time.
//!
//! # The Ready contract
//! The owner of a node loops: take a `Ready`, then
//! 0. optionally, send the leader's appends first
//!    ([`Ready::take_early_messages`]), so followers write in parallel with
//!    the leader;
//! 1. hand `restore_chunks` to the application, in order, except a last
//!    one: a chunk with an empty cursor begins a restore (the application
//!    marks its state as being restored, in the same write that drops the
//!    old state, so a power failure loses both or neither);
//! 2. persist `snapshot`, `entries` and `hard_state` with **one write**,
//!    synced unless only the commit index changed
//!    ([`Storage::persist`](crate::core::storage::Storage::persist));
//! 3. if `restore_chunks` ends with the last chunk, hand it to the
//!    application, which finishes the restore durably (its applied index
//!    becomes the snapshot's; the acknowledgement sent next tells the
//!    leader this node holds the snapshot, so it must survive a power
//!    failure);
//! 4. send `messages` (only now: they may acknowledge what steps 2 and 3
//!    made durable);
//! 5. apply `committed_entries` in order and answer `read_states` once the
//!    applied index reaches theirs;
//! 6. serve `snapshot_requests` (leader: pin a view of the application's
//!    state, now at the applied index and the membership in force, and
//!    read chunks of it, handed back with
//!    [`Node::snapshot_chunk_read`](crate::core::Node::snapshot_chunk_read)
//!    between Readies);
//! 7. call `advance`.
//!
//! The order of 1 to 3 keeps a crash anywhere safe: the log is replaced
//! only while the application is marked as being restored, and the mark
//! goes only after the log was replaced.
//!
//! No other input may reach the node between `ready` and `advance`.

use crate::core::message::{Message, MessageBody};
use crate::core::raft::Role;
use bytes::Bytes;

use crate::core::types::{Entry, HardState, LogIndex, NodeId, SnapshotChunk, SnapshotMeta, Term};

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

/// What the leader asks its owner to read for a follower that needs a
/// snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SnapshotRequest {
    /// Read the chunk at `cursor` of the view pinned for `to`; with
    /// `snapshot: None`, first pin a new view of the application's state
    /// at its applied index (dropping any earlier one for `to`).
    Read {
        /// The follower.
        to: NodeId,
        /// The (index, term) of the pinned view to read, or `None` to pin.
        snapshot: Option<(LogIndex, Term)>,
        /// Where the chunk starts.
        cursor: Bytes,
    },
    /// The transfer to `to` ended: drop its pinned view.
    Release {
        /// The follower.
        to: NodeId,
    },
}

/// Everything the core asks its owner to do, in the order of the contract.
#[derive(Debug, Default)]
pub struct Ready {
    /// Set when role or leader changed.
    pub soft_state: Option<SoftState>,
    /// Set when term, vote or commit changed.
    pub hard_state: Option<HardState>,
    /// Snapshot chunks to restore into the application, in order.
    pub restore_chunks: Vec<SnapshotChunk>,
    /// The snapshot whose last chunk is in `restore_chunks`: it replaces
    /// the log (entries after it are kept if the log holds its last
    /// entry, every entry is dropped otherwise).
    pub snapshot: Option<SnapshotMeta>,
    /// Leader: chunks of snapshots to read for followers.
    pub snapshot_requests: Vec<SnapshotRequest>,
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
    pub fn persist_batch(&self) -> crate::core::storage::PersistBatch<'_> {
        crate::core::storage::PersistBatch {
            hard_state: self.hard_state.as_ref(),
            snapshot: self.snapshot.as_ref(),
            entries: &self.entries,
        }
    }
}
