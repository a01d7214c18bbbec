//! The Raft state of one node and the dispatch of its inputs: ticks and
//! messages go to the handler of the node's role. The handlers themselves
//! live one concern per module (`election`, `replication`, `read_index`,
//! `transfer`, `snapshot`, `membership`).
//!
//! Invariants:
//! - `term` never decreases; `vote` is only set for the current term.
//! - At most one vote is granted per term (the vote is persisted before the
//!   response leaves, by the Ready contract).
//! - Only a leader has entries in `progress` that it acts on.

use std::collections::BTreeMap;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tracing::{debug, info};

use crate::core::config::Config;
use crate::core::log::RaftLog;
use crate::core::message::{Message, MessageBody};
use crate::core::progress::Progress;
use crate::core::read_index::ReadOnly;
use crate::core::ready::ReadState;
use crate::core::ready::SnapshotRequest;
use crate::core::storage::Storage;
use crate::core::types::{
    Entry, EntryKind, LogIndex, Membership, NodeId, RestorePoint, SnapshotChunk, Term,
};
use crate::core::{Error, HardState};

/// The role a node plays in its current term.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Follows a leader (or waits for one).
    Follower,
    /// Runs a PreVote round without changing its term.
    PreCandidate,
    /// Runs an election in a new term.
    Candidate,
    /// Leads its term.
    Leader,
}

/// The complete Raft state of one node.
pub struct Raft<S: Storage> {
    /// This node.
    pub id: NodeId,
    /// The current term. Invariant: never decreases.
    pub term: Term,
    /// The vote cast in `term`.
    pub vote: Option<NodeId>,
    /// The log.
    pub log: RaftLog<S>,
    /// The role in `term`.
    pub role: Role,
    /// The leader of `term`, once known.
    pub leader: Option<NodeId>,
    /// The membership as of the applied index.
    pub membership: Membership,
    /// Leader only: each member's replication progress (self included).
    pub progress: BTreeMap<NodeId, Progress>,
    /// Candidate only: the votes received in this election.
    pub votes: BTreeMap<NodeId, bool>,
    /// Messages to send after the next persist.
    pub messages: Vec<Message>,
    /// Ticks since the last election reset (or, for a leader, since the
    /// last CheckQuorum).
    pub election_elapsed: u32,
    /// Leader only: ticks since the last heartbeat.
    pub heartbeat_elapsed: u32,
    /// The election timeout drawn for this term.
    pub randomized_election_timeout: u32,
    /// Tunables.
    pub config: Config,
    /// This node's seeded randomness.
    pub rng: SmallRng,
    /// Leader only: ReadIndex requests awaiting confirmation.
    pub read_only: ReadOnly,
    /// Reads confirmed since the last Ready.
    pub read_states: Vec<ReadState>,
    /// Leader only: the node leadership is being handed to.
    pub lead_transferee: Option<NodeId>,
    /// Leader only: the index of the latest membership change proposed; no
    /// other may be proposed until it is applied.
    pub pending_conf_index: LogIndex,
    /// The snapshot the application is restoring, if any: the node then
    /// applies and appends nothing and never campaigns until it finishes.
    pub restoring: Option<RestorePoint>,
    /// Snapshot chunks to restore with the next Ready.
    pub restore_chunks: Vec<SnapshotChunk>,
    /// Leader only: snapshot reads and releases for the next Ready.
    pub snapshot_requests: Vec<SnapshotRequest>,
}

impl<S: Storage> Raft<S> {
    /// Returns a follower restored from `storage`, with randomness drawn
    /// from `seed`.
    pub fn new(config: Config, storage: S, seed: u64) -> Result<Raft<S>, Error> {
        config.validate().map_err(Error::InvalidConfig)?;
        let initial = storage.initial_state()?;
        let mut log = RaftLog::new(storage);
        let hard_state = initial.hard_state;
        log.commit_to(hard_state.commit.min(log.last_index()));
        if config.applied > log.applied {
            log.applied = config.applied.min(log.committed);
        }
        let mut raft = Raft {
            id: config.id,
            term: hard_state.term,
            vote: hard_state.vote,
            log,
            role: Role::Follower,
            leader: None,
            membership: initial.membership,
            progress: BTreeMap::new(),
            votes: BTreeMap::new(),
            messages: Vec::new(),
            election_elapsed: 0,
            heartbeat_elapsed: 0,
            randomized_election_timeout: config.election_ticks,
            rng: SmallRng::seed_from_u64(seed),
            read_only: ReadOnly::default(),
            read_states: Vec::new(),
            lead_transferee: None,
            pending_conf_index: LogIndex(0),
            restoring: config.restoring.clone(),
            restore_chunks: Vec::new(),
            snapshot_requests: Vec::new(),
            config,
        };
        raft.reset(hard_state.term);
        Ok(raft)
    }

    /// Returns the state to persist.
    pub fn hard_state(&self) -> HardState {
        HardState {
            term: self.term,
            vote: self.vote,
            commit: self.log.committed,
        }
    }

    /// Returns whether this node may campaign: it is a voter, and its
    /// application is not restoring a snapshot (it could not serve).
    pub fn is_promotable(&self) -> bool {
        self.membership.voters.contains(&self.id) && self.restoring.is_none()
    }

    /// Queues a message to `to` stamped with the current term.
    pub fn send(&mut self, to: NodeId, body: MessageBody) {
        self.send_with_term(to, self.term, body);
    }

    /// Queues a message to `to` with an explicit term.
    pub fn send_with_term(&mut self, to: NodeId, term: Term, body: MessageBody) {
        debug!(to = to.0, term = term.0, kind = body.kind_name(), "send");
        self.messages.push(Message {
            from: self.id,
            to,
            term,
            body,
        });
    }

    /// Resets the per-term state when entering `term`.
    pub fn reset(&mut self, term: Term) {
        if self.term != term {
            self.term = term;
            self.vote = None;
        }
        self.leader = None;
        self.election_elapsed = 0;
        self.heartbeat_elapsed = 0;
        self.randomized_election_timeout = self
            .rng
            .random_range(self.config.election_ticks..2 * self.config.election_ticks);
        self.votes.clear();
        self.lead_transferee = None;
        // Reads asked as leader are moot now (the owner drops every view
        // when the node stops leading).
        self.snapshot_requests.clear();
        self.read_only = ReadOnly::default();
        self.progress.clear();
        let next = self.log.last_index().next();
        for member in self.membership.members().collect::<Vec<_>>() {
            let inflights = self.config.inflights();
            self.progress.insert(member, Progress::new(next, inflights));
        }
    }

    /// Becomes a follower of `leader` in `term`.
    pub fn become_follower(&mut self, term: Term, leader: Option<NodeId>) {
        let was_leader = self.role == Role::Leader;
        self.reset(term);
        self.role = Role::Follower;
        self.leader = leader;
        if was_leader {
            info!(node = self.id.0, term = term.0, "leader stepped down");
        }
    }

    /// Becomes leader of the current term: resets every follower to probing
    /// and appends an empty entry so the term can commit (§5.4.2, §8).
    pub fn become_leader(&mut self) {
        assert!(
            self.role != Role::Follower,
            "a follower cannot become leader directly"
        );
        self.reset(self.term);
        self.role = Role::Leader;
        self.leader = Some(self.id);
        let persisted = self.log.persisted_last_index();
        if let Some(own) = self.progress.get_mut(&self.id) {
            own.maybe_update(persisted);
            own.become_replicate();
        }
        // No membership change until everything before this term is applied.
        self.pending_conf_index = self.log.last_index();
        let entry = Entry {
            term: self.term,
            index: self.log.last_index().next(),
            kind: EntryKind::Normal,
            data: bytes::Bytes::new(),
        };
        self.log.append(&[entry]);
        info!(node = self.id.0, term = self.term.0, "became leader");
    }

    /// Advances time by one tick.
    pub fn tick(&mut self) {
        if self.role == Role::Leader {
            self.tick_leader();
        } else {
            self.tick_election();
        }
    }

    fn tick_election(&mut self) {
        self.election_elapsed += 1;
        if self.is_promotable() && self.election_elapsed >= self.randomized_election_timeout {
            self.election_elapsed = 0;
            self.campaign(self.config.pre_vote, false);
        }
    }

    fn tick_leader(&mut self) {
        self.tick_snapshot_transfers();
        self.heartbeat_elapsed += 1;
        self.election_elapsed += 1;
        if self.election_elapsed >= self.config.election_ticks {
            self.election_elapsed = 0;
            // A removed leader stays until it has handed off (membership.rs).
            let quorum_lost = self.config.check_quorum && !self.check_quorum_active();
            if quorum_lost && self.is_promotable() {
                info!(
                    node = self.id.0,
                    term = self.term.0,
                    "lost contact with a quorum"
                );
                self.become_follower(self.term, None);
                return;
            }
            self.abort_leader_transfer();
            self.maybe_hand_off_after_removal();
        }
        if self.heartbeat_elapsed >= self.config.heartbeat_ticks {
            self.heartbeat_elapsed = 0;
            self.broadcast_heartbeat();
        }
    }

    /// Returns whether a quorum was heard from in this period, and starts
    /// the next period.
    fn check_quorum_active(&mut self) -> bool {
        let own_id = self.id;
        let active = crate::core::quorum::has_quorum(&self.membership.voters, |voter| {
            voter == own_id || self.progress.get(&voter).is_some_and(|p| p.recent_active)
        });
        for progress in self.progress.values_mut() {
            progress.recent_active = false;
        }
        active
    }

    /// Handles a message from a peer.
    pub fn step(&mut self, message: Message) {
        if !self.accept_term(&message) {
            return;
        }
        let from = message.from;
        match message.body {
            MessageBody::RequestVote { .. } => self.on_request_vote(message),
            MessageBody::VoteResponse {
                pre_vote,
                granted,
                commit,
                commit_term,
            } => {
                self.learn_commit(commit, commit_term);
                self.on_vote_response(from, pre_vote, granted)
            }
            MessageBody::AppendEntries { .. } => self.on_append_entries(message),
            MessageBody::AppendResponse { .. } => self.on_append_response(message),
            MessageBody::Heartbeat { commit, read_round } => {
                self.on_heartbeat(from, commit, read_round)
            }
            MessageBody::HeartbeatResponse { read_round } => {
                self.on_heartbeat_response(from, read_round)
            }
            MessageBody::SnapshotChunk { .. } => self.on_snapshot_chunk(message),
            MessageBody::SnapshotChunkResponse {
                snapshot_index,
                snapshot_term,
                next_cursor,
            } => self.on_snapshot_chunk_response(from, snapshot_index, snapshot_term, next_cursor),
            MessageBody::TimeoutNow => self.on_timeout_now(from),
        }
    }

    /// Applies the term rules of §5.1 (with the PreVote and CheckQuorum
    /// exceptions); returns whether the message should be handled further.
    fn accept_term(&mut self, message: &Message) -> bool {
        if message.term > self.term {
            return self.accept_higher_term(message);
        }
        if message.term < self.term {
            self.answer_lower_term(message);
            return false;
        }
        true
    }

    fn accept_higher_term(&mut self, message: &Message) -> bool {
        match message.body {
            MessageBody::RequestVote {
                pre_vote,
                leadership_transfer,
                ..
            } => {
                if !leadership_transfer && self.in_leader_lease() {
                    debug!(
                        from = message.from.0,
                        "ignoring vote request inside the leader lease"
                    );
                    return false;
                }
                if !pre_vote {
                    self.become_follower(message.term, None);
                }
            }
            MessageBody::VoteResponse {
                pre_vote: true,
                granted: true,
                ..
            } => {}
            MessageBody::AppendEntries { .. }
            | MessageBody::Heartbeat { .. }
            | MessageBody::SnapshotChunk { .. } => {
                self.become_follower(message.term, Some(message.from));
            }
            _ => self.become_follower(message.term, None),
        }
        true
    }

    /// Answers a message from an older term so a stale leader or
    /// pre-candidate learns the current term.
    fn answer_lower_term(&mut self, message: &Message) {
        match message.body {
            MessageBody::AppendEntries { .. }
            | MessageBody::Heartbeat { .. }
            | MessageBody::SnapshotChunk { .. }
                if self.config.check_quorum || self.config.pre_vote =>
            {
                self.send(
                    message.from,
                    MessageBody::AppendResponse {
                        rejected: false,
                        index: LogIndex(0),
                        hint_index: LogIndex(0),
                        hint_term: Term(0),
                    },
                );
            }
            MessageBody::RequestVote { pre_vote: true, .. } => {
                self.send_vote_response(message.from, self.term, true, false);
            }
            _ => debug!(
                from = message.from.0,
                term = message.term.0,
                "ignoring message of an older term"
            ),
        }
    }

    /// Returns whether this follower heard from a live leader within the
    /// election timeout (it then refuses to help depose it).
    fn in_leader_lease(&self) -> bool {
        self.config.check_quorum
            && self.leader.is_some()
            && self.election_elapsed < self.config.election_ticks
    }
}
