//! Tunables of one Raft node. Time is counted in ticks: the driver (or the
//! simulator) decides how long a tick lasts.

use crate::core::inflights::Inflights;
use crate::core::types::{LogIndex, NodeId, RestorePoint};

/// The configuration of a [`Node`](crate::core::Node).
#[derive(Clone, Debug)]
pub struct Config {
    /// This node's id; never 0.
    pub id: NodeId,
    /// Base election timeout; each election draws a timeout uniformly from
    /// `[election_ticks, 2 * election_ticks)`. Also the CheckQuorum period
    /// and the leader lease.
    pub election_ticks: u32,
    /// Ticks between leader heartbeats; must be below `election_ticks`.
    pub heartbeat_ticks: u32,
    /// Run a PreVote round before incrementing the term (dissertation §9.6).
    pub pre_vote: bool,
    /// A leader steps down when it has not heard from a quorum within an
    /// election timeout, and followers ignore votes while their leader is
    /// alive (dissertation §6.2).
    pub check_quorum: bool,
    /// Append messages in flight to one follower before waiting for acks.
    pub inflight_messages_max: usize,
    /// Entry bytes in flight to one follower before waiting for acks (the
    /// message that crosses it still goes): kept below the transport's
    /// per-peer queue, so appends are not dropped for lack of room.
    pub inflight_bytes_max: u64,
    /// Upper bound on the entry bytes in one append message.
    pub message_bytes_max: u64,
    /// Upper bound on the bytes of committed entries in one `Ready`.
    pub apply_batch_bytes_max: u64,
    /// Size of each snapshot chunk sent to a lagging follower.
    pub snapshot_chunk_bytes: u64,
    /// Snapshot chunks in flight to one follower before waiting for acks.
    pub snapshot_chunks_in_flight: usize,
    /// A snapshot transfer that made no progress for this many ticks is
    /// resumed from the follower's last acknowledged position (a chunk
    /// was lost).
    pub snapshot_stall_ticks: u32,
    /// A learner may be promoted only once its log is within this many
    /// entries of the leader's commit index.
    pub promote_lag_entries_max: u64,
    /// The last index the application has already applied (at restart).
    pub applied: LogIndex,
    /// The snapshot the application was restoring when the node stopped,
    /// if any: the node then applies nothing until a snapshot restores.
    pub restoring: Option<RestorePoint>,
}

impl Config {
    /// Returns a configuration with production defaults for node `id`.
    pub fn new(id: NodeId) -> Config {
        Config {
            id,
            election_ticks: 10,
            heartbeat_ticks: 1,
            pre_vote: true,
            check_quorum: true,
            inflight_messages_max: 256,
            inflight_bytes_max: 16 << 20,
            message_bytes_max: 1 << 20,
            apply_batch_bytes_max: 4 << 20,
            snapshot_chunk_bytes: 1 << 20,
            snapshot_chunks_in_flight: 4,
            snapshot_stall_ticks: 20,
            promote_lag_entries_max: 1000,
            applied: LogIndex(0),
            restoring: None,
        }
    }

    /// Returns an empty in-flight window with this configuration's bounds.
    pub(crate) fn inflights(&self) -> Inflights {
        Inflights::new(self.inflight_messages_max, self.inflight_bytes_max)
    }

    /// Checks the configuration; returns what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if self.id == NodeId(0) {
            return Err("node id must not be 0".into());
        }
        if self.heartbeat_ticks == 0 || self.heartbeat_ticks >= self.election_ticks {
            return Err(format!(
                "heartbeat_ticks ({}) must be positive and below election_ticks ({})",
                self.heartbeat_ticks, self.election_ticks
            ));
        }
        if self.inflight_messages_max == 0 || self.inflight_bytes_max == 0 {
            return Err("inflight_messages_max and inflight_bytes_max must be positive".into());
        }
        if self.message_bytes_max == 0
            || self.snapshot_chunk_bytes == 0
            || self.snapshot_chunks_in_flight == 0
            || self.snapshot_stall_ticks == 0
        {
            return Err("message_bytes_max, snapshot_chunk_bytes, snapshot_chunks_in_flight and snapshot_stall_ticks must be positive".into());
        }
        Ok(())
    }
}
