//! Membership change, one server at a time (dissertation §4.1), with
//! learners that catch up before they are promoted to voters (etcd).
//!
//! Invariants:
//! - At most one change is in the log and not yet applied: the leader
//!   refuses another until `pending_conf_index` is applied, and a new
//!   leader sets it to its last index so no change is proposed before the
//!   earlier terms' changes are applied (the fix of the single-server
//!   change bug, Ongaro 2015).
//! - A change takes effect when applied, on every replica at the same
//!   point of the log.
//! - A node does not campaign while a committed membership change is not
//!   yet applied (etcd's rule): until it is, its view of the voters may be
//!   stale (after a restart it starts from the snapshot's membership), and
//!   a node counting the wrong voters could win an election alone.
//! - The last voter cannot be removed.
//! - A leader that removes itself keeps leading, counting only the new
//!   voters and taking no proposals, and transfers leadership to the most
//!   up-to-date remaining voter (retried every election timeout; CheckQuorum
//!   does not depose it), so the remaining voters learn the removal
//!   committed from it rather than needing its vote.

use tracing::info;

use crate::core::Error;
use crate::core::progress::Progress;
use crate::core::raft::{Raft, Role};
use crate::core::storage::Storage;
use crate::core::types::{ConfChange, EntryKind, LogIndex, NodeId};

impl<S: Storage> Raft<S> {
    /// Proposes a membership change; returns its index.
    pub fn propose_conf_change(&mut self, change: ConfChange) -> Result<LogIndex, Error> {
        if self.role != Role::Leader {
            return Err(Error::NotLeader {
                leader_hint: self.leader,
            });
        }
        if self.pending_conf_index > self.log.applied {
            return Err(Error::ConfChangePending {
                pending_index: self.pending_conf_index,
            });
        }
        self.validate_conf_change(change)?;
        let index = self.propose(EntryKind::ConfChange, change.encode())?;
        self.pending_conf_index = index;
        Ok(index)
    }

    /// Returns whether a membership change in `(applied, committed]` is
    /// still to be applied, reading the log in pages.
    pub fn has_unapplied_conf_changes(&self) -> bool {
        const PAGE_BYTES: u64 = 1 << 20;
        let high = self.log.committed.next();
        let mut low = self.log.applied.next().max(self.log.first_index());
        while low < high {
            let entries = match self.log.slice(low, high, PAGE_BYTES) {
                Ok(entries) => entries,
                // Compacted meanwhile: a snapshot covers (and set) it.
                Err(_) => return false,
            };
            if entries
                .iter()
                .any(|entry| entry.kind == EntryKind::ConfChange)
            {
                return true;
            }
            match entries.last() {
                Some(last) => low = last.index.next(),
                None => return false,
            }
        }
        false
    }

    fn validate_conf_change(&self, change: ConfChange) -> Result<(), Error> {
        let invalid = |reason: String| Err(Error::InvalidConfChange(reason));
        match change {
            ConfChange::AddLearner(NodeId(0)) => invalid("node id 0 is reserved".into()),
            ConfChange::AddLearner(node) if self.membership.contains(node) => {
                invalid(format!("node {node} is already a member"))
            }
            ConfChange::PromoteLearner(node) if !self.membership.learners.contains(&node) => {
                invalid(format!("node {node} is not a learner"))
            }
            ConfChange::PromoteLearner(node) => {
                let matched = self.progress.get(&node).map_or(LogIndex(0), |p| p.matched);
                if matched.0 + self.config.promote_lag_entries_max < self.log.committed.0 {
                    return invalid(format!(
                        "learner {node} is still catching up (at {matched}, commit {})",
                        self.log.committed
                    ));
                }
                Ok(())
            }
            ConfChange::RemoveNode(node) if !self.membership.contains(node) => {
                invalid(format!("node {node} is not a member"))
            }
            ConfChange::RemoveNode(node)
                if self.membership.voters.len() == 1 && self.membership.voters.contains(&node) =>
            {
                invalid(format!("node {node} is the last voter"))
            }
            _ => Ok(()),
        }
    }

    /// Applies a committed membership change (called as its entry is handed
    /// to the application).
    pub fn apply_conf_change(&mut self, change: ConfChange) {
        info!(node = self.id.0, ?change, "applying membership change");
        match change {
            ConfChange::AddLearner(node) => {
                if !self.membership.contains(node) {
                    self.membership.learners.insert(node);
                    let next = self.log.last_index().next();
                    let inflights = self.config.inflights();
                    self.progress
                        .entry(node)
                        .or_insert_with(|| Progress::new(next, inflights));
                }
            }
            ConfChange::PromoteLearner(node) => {
                if self.membership.learners.remove(&node) {
                    self.membership.voters.insert(node);
                }
            }
            ConfChange::RemoveNode(node) => {
                self.membership.voters.remove(&node);
                self.membership.learners.remove(&node);
                if self
                    .progress
                    .remove(&node)
                    .is_some_and(|progress| progress.outgoing.is_some())
                {
                    self.snapshot_requests
                        .push(crate::core::ready::SnapshotRequest::Release { to: node });
                }
                if self.lead_transferee == Some(node) {
                    self.abort_leader_transfer();
                }
            }
        }
        if self.role == Role::Leader {
            // A leader that removed itself keeps leading: stepping down at
            // once could leave followers that have not yet learned the
            // removal committed waiting for its vote. It counts only the
            // new voters and hands leadership to the most up-to-date one.
            self.maybe_commit();
            self.maybe_hand_off_after_removal();
        }
    }

    /// Leader only: if this node is no longer a voter, starts handing
    /// leadership to the remaining voter with the highest match index.
    pub fn maybe_hand_off_after_removal(&mut self) {
        if self.role != Role::Leader || self.is_promotable() || self.lead_transferee.is_some() {
            return;
        }
        let target = self
            .membership
            .voters
            .iter()
            .filter_map(|voter| self.progress.get(voter).map(|p| (p.matched, *voter)))
            .max()
            .map(|(_, voter)| voter);
        if let Some(target) = target {
            let _ = self.transfer_leader(target);
        }
    }
}
