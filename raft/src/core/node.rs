//! The public API of the Raft core: feed inputs (`tick`, `step`,
//! `propose`, `read_index`, `transfer_leader`, `propose_conf_change`), take
//! a [`Ready`], handle it per the contract in [`crate::core::ready`], then
//! `advance`.
//!
//! Invariant: between `ready` returning `Some` and `advance`, no input is
//! accepted (asserted), so the core always knows what its owner is
//! persisting.

use bytes::Bytes;

use crate::core::Error;
use crate::core::config::Config;
use crate::core::message::Message;
use crate::core::raft::{Raft, Role};
use crate::core::ready::{Ready, SoftState};
use crate::core::storage::Storage;
use crate::core::types::{
    ConfChange, EntryKind, HardState, LogIndex, Membership, NodeId, SnapshotChunk, Term,
};

/// Identifies an accepted proposal: it took effect if and only if the entry
/// applied at `index` has `term`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ProposalId {
    /// Where the proposal sits in the log.
    pub index: LogIndex,
    /// The term of the leader that accepted it.
    pub term: Term,
}

/// A snapshot of a node's state for observers (metrics, tests).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// This node.
    pub id: NodeId,
    /// The current term.
    pub term: Term,
    /// The role in that term.
    pub role: Role,
    /// The known leader.
    pub leader: Option<NodeId>,
    /// The commit index.
    pub commit: LogIndex,
    /// The applied index (handed to the application and advanced).
    pub applied: LogIndex,
    /// The first index still in the log.
    pub first_index: LogIndex,
    /// The last index in the log.
    pub last_index: LogIndex,
    /// The membership as of the applied index.
    pub membership: Membership,
    /// Whether the application is restoring a snapshot (it then applies
    /// nothing and the node never campaigns).
    pub restoring: bool,
}

/// What the Ready being handled covers, to advance past it.
#[derive(Debug, Default)]
struct InProgress {
    last_entry: Option<(LogIndex, Term)>,
    snapshot_index: Option<LogIndex>,
    last_committed: Option<LogIndex>,
}

/// One Raft node: the deterministic core, without I/O.
pub struct Node<S: Storage> {
    raft: Raft<S>,
    previous_soft_state: SoftState,
    previous_hard_state: HardState,
    in_progress: Option<InProgress>,
}

impl<S: Storage> Node<S> {
    /// Returns a node restored from `storage`, drawing its randomness from
    /// `seed`.
    pub fn new(config: Config, storage: S, seed: u64) -> Result<Node<S>, Error> {
        let raft = Raft::new(config, storage, seed)?;
        let previous_soft_state = SoftState {
            leader: raft.leader,
            role: raft.role,
        };
        let previous_hard_state = raft.hard_state();
        Ok(Node {
            raft,
            previous_soft_state,
            previous_hard_state,
            in_progress: None,
        })
    }

    fn assert_idle(&self) {
        assert!(
            self.in_progress.is_none(),
            "input between ready() and advance()"
        );
    }

    /// Advances time by one tick.
    pub fn tick(&mut self) {
        self.assert_idle();
        self.raft.tick();
    }

    /// Handles a message from a peer. Messages addressed elsewhere are
    /// ignored.
    pub fn step(&mut self, message: Message) {
        self.assert_idle();
        if message.to == self.raft.id {
            self.raft.step(message);
        }
    }

    /// Proposes application data; returns where it was placed.
    pub fn propose(&mut self, data: Bytes) -> Result<ProposalId, Error> {
        self.assert_idle();
        let index = self.raft.propose(EntryKind::Normal, data)?;
        Ok(ProposalId {
            index,
            term: self.raft.term,
        })
    }

    /// Proposes a membership change.
    pub fn propose_conf_change(&mut self, change: ConfChange) -> Result<ProposalId, Error> {
        self.assert_idle();
        let index = self.raft.propose_conf_change(change)?;
        Ok(ProposalId {
            index,
            term: self.raft.term,
        })
    }

    /// Requests a linearizable read tagged with `context`.
    pub fn read_index(&mut self, context: u64) -> Result<(), Error> {
        self.assert_idle();
        self.raft.read_index(context)
    }

    /// Starts handing leadership to `target`.
    pub fn transfer_leader(&mut self, target: NodeId) -> Result<(), Error> {
        self.assert_idle();
        self.raft.transfer_leader(target)
    }

    /// Starts an election now (tests and operators).
    pub fn campaign(&mut self) {
        self.assert_idle();
        self.raft.campaign(self.raft.config.pre_vote, false);
    }

    /// Leader: hands over a chunk read for `to` as a
    /// [`SnapshotRequest::Read`](crate::core::SnapshotRequest::Read) asked.
    pub fn snapshot_chunk_read(&mut self, to: NodeId, chunk: SnapshotChunk) {
        self.assert_idle();
        self.raft.on_snapshot_chunk_read(to, chunk);
    }

    /// Leader: reports that a read asked for `to` failed (its view is gone
    /// or unreadable); the transfer starts over.
    pub fn snapshot_read_failed(&mut self, to: NodeId) {
        self.assert_idle();
        self.raft.on_snapshot_read_failed(to);
    }

    /// Returns the work to do, if any. Call [`Node::advance`] once done.
    pub fn ready(&mut self) -> Option<Ready> {
        self.assert_idle();
        self.raft.flush_appends();
        self.raft.flush_read_round();
        // An application holding a partial restore applies nothing.
        let mut committed_entries = if self.raft.restoring.is_some() {
            Vec::new()
        } else {
            self.raft
                .log
                .next_committed_entries(self.raft.config.apply_batch_bytes_max)
        };
        // At most one membership change per Ready, as its last entry: the
        // owner saves the membership in force after it (`status()`), which
        // must be the one at that change's index, not a later one's.
        if let Some(change) = committed_entries
            .iter()
            .position(|entry| entry.kind == EntryKind::ConfChange)
        {
            committed_entries.truncate(change + 1);
        }
        for entry in committed_entries
            .iter()
            .filter(|e| e.kind == EntryKind::ConfChange)
        {
            let change = ConfChange::decode(&entry.data)
                .expect("conf change entries are written by the core");
            self.raft.apply_conf_change(change);
        }
        let ready = self.collect_ready(committed_entries);
        if is_empty(&ready) {
            return None;
        }
        self.in_progress = Some(InProgress {
            last_entry: ready.entries.last().map(|e| (e.index, e.term)),
            snapshot_index: ready.snapshot.as_ref().map(|meta| meta.index),
            last_committed: ready.committed_entries.last().map(|e| e.index),
        });
        Some(ready)
    }

    fn collect_ready(&mut self, committed_entries: Vec<crate::core::Entry>) -> Ready {
        let soft_state = SoftState {
            leader: self.raft.leader,
            role: self.raft.role,
        };
        let hard_state = self.raft.hard_state();
        let ready = Ready {
            soft_state: (soft_state != self.previous_soft_state).then_some(soft_state),
            hard_state: (hard_state != self.previous_hard_state).then_some(hard_state),
            restore_chunks: std::mem::take(&mut self.raft.restore_chunks),
            snapshot: self.raft.log.installing.take(),
            snapshot_requests: std::mem::take(&mut self.raft.snapshot_requests),
            entries: self.raft.log.unstable.entries.clone(),
            messages: std::mem::take(&mut self.raft.messages),
            committed_entries,
            read_states: std::mem::take(&mut self.raft.read_states),
        };
        self.previous_soft_state = soft_state;
        self.previous_hard_state = hard_state;
        ready
    }

    /// Reports the last Ready handled: persisted, sent and applied.
    pub fn advance(&mut self) {
        let done = self.in_progress.take().expect("advance() without ready()");
        let log = &mut self.raft.log;
        if let Some(index) = done.snapshot_index {
            log.unstable.stable_snapshot_to(index);
            log.applied = index;
        }
        if let Some(index) = done.last_committed {
            log.applied = index;
        }
        if let Some((index, term)) = done.last_entry {
            log.unstable.stable_to(index, term);
            let persisted = log.persisted_last_index();
            self.raft.on_own_append_persisted(persisted);
        }
    }

    /// Returns the leader this node knows of (cheaper than `status`).
    pub fn leader(&self) -> Option<NodeId> {
        self.raft.leader
    }

    /// Returns the node's state.
    pub fn status(&self) -> Status {
        Status {
            id: self.raft.id,
            term: self.raft.term,
            role: self.raft.role,
            leader: self.raft.leader,
            commit: self.raft.log.committed,
            applied: self.raft.log.applied,
            first_index: self.raft.log.first_index(),
            last_index: self.raft.log.last_index(),
            membership: self.raft.membership.clone(),
            restoring: self.raft.restoring.is_some(),
        }
    }

    /// On a leader, the lowest index every other member is known to hold
    /// (its `matched`); `None` on any other role or alone. Compaction
    /// keeps entries above it, within a bound, so a follower a little
    /// behind catches up from the log.
    pub fn followers_matched(&self) -> Option<LogIndex> {
        if self.raft.role != Role::Leader {
            return None;
        }
        self.raft
            .progress
            .iter()
            .filter(|(id, _)| **id != self.raft.id)
            .map(|(_, progress)| progress.matched)
            .min()
    }

    /// Returns the term of the entry at `index` if it is in the log.
    pub fn term_at(&self, index: LogIndex) -> Option<Term> {
        self.raft
            .log
            .term(index)
            .ok()
            .filter(|&term| term > Term(0) || index == LogIndex(0))
    }

    /// Stops the node and returns its storage (a crash keeps the disk).
    pub fn into_storage(self) -> S {
        self.raft.log.storage
    }

    /// Returns the storage (for reads by the owner).
    pub fn storage(&self) -> &S {
        &self.raft.log.storage
    }

    /// Returns the storage for writes by the owner (persisting a Ready,
    /// creating snapshots); never between `ready` and `advance` except to
    /// persist that Ready.
    pub fn storage_mut(&mut self) -> &mut S {
        &mut self.raft.log.storage
    }
}

fn is_empty(ready: &Ready) -> bool {
    ready.soft_state.is_none()
        && ready.hard_state.is_none()
        && ready.restore_chunks.is_empty()
        && ready.snapshot.is_none()
        && ready.snapshot_requests.is_empty()
        && ready.entries.is_empty()
        && ready.messages.is_empty()
        && ready.committed_entries.is_empty()
        && ready.read_states.is_empty()
}
