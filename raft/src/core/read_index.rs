//! ReadIndex linearizable reads (dissertation §6.4): the leader records its
//! commit index, confirms it is still leader with a round of heartbeats, and
//! then releases the read at that index.
//!
//! Invariants:
//! - A read is released only after a quorum of voters answered a heartbeat
//!   sent after the read was registered. The leader's own acknowledgement
//!   counts only if it is a voter: a removed leader still handing off needs
//!   a quorum of the remaining voters, even when one voter remains.
//! - A new leader registers reads only once an entry of its own term is
//!   committed (until then its commit index may be stale); earlier reads
//!   wait.
//! - Reads are released in the order they were registered.

use std::collections::{BTreeSet, VecDeque};

use crate::core::Error;
use crate::core::quorum::has_quorum;
use crate::core::raft::{Raft, Role};
use crate::core::ready::ReadState;
use crate::core::storage::Storage;
use crate::core::types::{LogIndex, NodeId};

/// A read waiting for its heartbeat round to be confirmed.
#[derive(Clone, Debug)]
struct PendingRead {
    round: u64,
    index: LogIndex,
    context: u64,
    acks: BTreeSet<NodeId>,
}

/// The leader's pending ReadIndex requests.
#[derive(Clone, Debug)]
pub struct ReadOnly {
    /// Invariant: rounds are non-decreasing front to back.
    pending: VecDeque<PendingRead>,
    /// Reads waiting for the first commit of the leader's term.
    waiting_for_commit: Vec<u64>,
    /// The round the next heartbeat broadcast carries.
    next_round: u64,
    /// Whether a read joined `next_round` and needs a broadcast.
    round_needed: bool,
}

impl Default for ReadOnly {
    fn default() -> ReadOnly {
        ReadOnly {
            pending: VecDeque::new(),
            waiting_for_commit: Vec::new(),
            next_round: 1,
            round_needed: false,
        }
    }
}

impl ReadOnly {
    /// Returns the round for a heartbeat broadcast and starts the next one.
    pub fn take_round(&mut self) -> u64 {
        let round = self.next_round;
        self.next_round += 1;
        self.round_needed = false;
        round
    }
}

impl<S: Storage> Raft<S> {
    /// Requests a linearizable read; the answer arrives as a [`ReadState`]
    /// carrying `context` in a later Ready.
    pub fn read_index(&mut self, context: u64) -> Result<(), Error> {
        if self.role != Role::Leader {
            return Err(Error::NotLeader {
                leader_hint: self.leader,
            });
        }
        if !self.committed_in_current_term() {
            self.read_only.waiting_for_commit.push(context);
            return Ok(());
        }
        self.register_read(context);
        Ok(())
    }

    fn committed_in_current_term(&self) -> bool {
        self.log
            .term(self.log.committed)
            .is_ok_and(|term| term == self.term)
    }

    fn register_read(&mut self, context: u64) {
        let index = self.log.committed;
        let own_id = self.id;
        // Only a leader that is itself the sole voter is its own quorum. A
        // removed leader still handing off may see one voter left, but that
        // voter is another node, which may already lead a newer term: the
        // read must be confirmed by it like any other.
        if self.membership.voters.len() == 1 && self.membership.voters.contains(&own_id) {
            self.read_states.push(ReadState { index, context });
            return;
        }
        let read = PendingRead {
            round: self.read_only.next_round,
            index,
            context,
            acks: BTreeSet::from([own_id]),
        };
        self.read_only.pending.push_back(read);
        self.read_only.round_needed = true;
    }

    /// Sends the heartbeat round that confirms newly registered reads, once
    /// per Ready, so concurrent reads share one round.
    pub fn flush_read_round(&mut self) {
        if self.role == Role::Leader && self.read_only.round_needed {
            self.broadcast_heartbeat();
        }
    }

    /// Registers the reads that waited for the leader's first commit.
    pub fn release_reads_after_commit(&mut self) {
        if self.read_only.waiting_for_commit.is_empty() || !self.committed_in_current_term() {
            return;
        }
        for context in std::mem::take(&mut self.read_only.waiting_for_commit) {
            self.register_read(context);
        }
    }

    /// Records that `from` answered heartbeat round `round`, which confirms
    /// every read registered at or before it; releases the confirmed ones.
    pub fn confirm_reads(&mut self, from: NodeId, round: u64) {
        for read in self
            .read_only
            .pending
            .iter_mut()
            .take_while(|read| read.round <= round)
        {
            read.acks.insert(from);
        }
        while let Some(front) = self.read_only.pending.front() {
            if !has_quorum(&self.membership.voters, |voter| front.acks.contains(&voter)) {
                break;
            }
            let read = self.read_only.pending.pop_front().expect("front exists");
            self.read_states.push(ReadState {
                index: read.index,
                context: read.context,
            });
        }
    }
}
