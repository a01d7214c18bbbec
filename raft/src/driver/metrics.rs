//! The node's Prometheus metrics, derived by the driver after each Ready
//! (the core emits none). Every series carries `group` and `node`.

use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, counter, gauge, histogram};

use crate::core::{LogIndex, Message, MessageBody, NodeId, Role, Status};
use crate::metrics as names;

/// Handles on one node's series.
pub struct NodeMetrics {
    term: Gauge,
    is_leader: Gauge,
    commit_index: Gauge,
    applied_index: Gauge,
    log_entries: Gauge,
    fsync_seconds: Histogram,
    leader_changes: Counter,
    snapshot_sent: Counter,
    snapshot_received: Counter,
    snapshot_sent_bytes: Counter,
    snapshot_received_bytes: Counter,
    append_sent: Counter,
    proposals_committed: Counter,
    proposals_dropped: Counter,
    proposals_rejected: Counter,
}

/// How a proposal ended, the `status` label of `raft_proposals_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProposalOutcome {
    /// Applied at the index and term it was given.
    Committed,
    /// Its index was applied with another entry (leadership changed).
    Dropped,
    /// Refused by the core (not leader, transfer in progress...).
    Rejected,
}

impl NodeMetrics {
    /// Registers the series of node `node` of `group`.
    pub fn new(group: u64, node: NodeId) -> NodeMetrics {
        let labels = [("group", group.to_string()), ("node", node.0.to_string())];
        // Every outcome's series exists from the start, at 0.
        let proposals = |status: &'static str| {
            let mut labels = labels.to_vec();
            labels.push(("status", status.to_string()));
            counter!(names::RAFT_PROPOSALS_TOTAL, &labels)
        };
        NodeMetrics {
            term: gauge!(names::RAFT_TERM, &labels),
            is_leader: gauge!(names::RAFT_IS_LEADER, &labels),
            commit_index: gauge!(names::RAFT_COMMIT_INDEX, &labels),
            applied_index: gauge!(names::RAFT_APPLIED_INDEX, &labels),
            log_entries: gauge!(names::RAFT_LOG_ENTRIES, &labels),
            fsync_seconds: histogram!(names::RAFT_FSYNC_DURATION_SECONDS, &labels),
            leader_changes: counter!(names::RAFT_LEADER_CHANGES_TOTAL, &labels),
            snapshot_sent: counter!(names::RAFT_SNAPSHOT_SENT_TOTAL, &labels),
            snapshot_received: counter!(names::RAFT_SNAPSHOT_RECEIVED_TOTAL, &labels),
            snapshot_sent_bytes: counter!(names::RAFT_SNAPSHOT_SENT_BYTES_TOTAL, &labels),
            snapshot_received_bytes: counter!(names::RAFT_SNAPSHOT_RECEIVED_BYTES_TOTAL, &labels),
            append_sent: counter!(names::RAFT_APPEND_ENTRIES_SENT_TOTAL, &labels),
            proposals_committed: proposals("committed"),
            proposals_dropped: proposals("dropped"),
            proposals_rejected: proposals("rejected"),
        }
    }

    /// Updates the gauges from the node's status.
    pub fn observe_status(&self, status: &Status, first_index: LogIndex) {
        self.term.set(status.term.0 as f64);
        self.is_leader.set(if status.role == Role::Leader {
            1.0
        } else {
            0.0
        });
        self.commit_index.set(status.commit.0 as f64);
        self.applied_index.set(status.applied.0 as f64);
        self.log_entries
            .set((status.last_index.0 + 1).saturating_sub(first_index.0) as f64);
    }

    /// Records one synced write.
    pub fn fsync(&self, elapsed: Duration) {
        self.fsync_seconds.record(elapsed.as_secs_f64());
    }

    /// Counts a proposal outcome.
    pub fn proposal(&self, outcome: ProposalOutcome) {
        match outcome {
            ProposalOutcome::Committed => &self.proposals_committed,
            ProposalOutcome::Dropped => &self.proposals_dropped,
            ProposalOutcome::Rejected => &self.proposals_rejected,
        }
        .increment(1);
    }

    /// Counts this node becoming leader.
    pub fn leader_change(&self) {
        self.leader_changes.increment(1);
    }

    /// Counts a snapshot installed from the leader.
    pub fn snapshot_received(&self) {
        self.snapshot_received.increment(1);
    }

    /// Counts the bytes of a snapshot chunk read for a follower.
    pub fn snapshot_chunk_sent(&self, bytes: usize) {
        self.snapshot_sent_bytes.increment(bytes as u64);
    }

    /// Counts the bytes of a snapshot chunk restored from the leader.
    pub fn snapshot_chunk_received(&self, bytes: usize) {
        self.snapshot_received_bytes.increment(bytes as u64);
    }

    /// Counts outgoing appends and snapshot transfers (first chunks).
    pub fn messages_out(&self, messages: &[Message]) {
        for message in messages {
            match &message.body {
                MessageBody::AppendEntries { .. } => self.append_sent.increment(1),
                MessageBody::SnapshotChunk { cursor, .. } if cursor.is_empty() => {
                    self.snapshot_sent.increment(1)
                }
                _ => {}
            }
        }
    }
}
