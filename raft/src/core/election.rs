//! Leader election (§5.2) with PreVote (dissertation §9.6): campaigning,
//! answering vote requests and counting votes.
//!
//! Invariants:
//! - A vote is granted only to a candidate whose log is at least as
//!   up-to-date as ours (§5.4.1), and at most once per term.
//! - A pre-vote changes no state on either side.
//! - Every vote answer carries the responder's commit index and the term
//!   there; a node commits up to it only if its own log holds that entry
//!   (Log Matching makes the prefix the committed one).

use tracing::{debug, info};

use crate::core::message::{Message, MessageBody};
use crate::core::quorum::{VoteResult, vote_result};
use crate::core::raft::{Raft, Role};
use crate::core::storage::Storage;
use crate::core::types::{LogIndex, NodeId, Term};

impl<S: Storage> Raft<S> {
    /// Starts a (pre-)election. A transfer campaign skips PreVote and asks
    /// voters to ignore their leader lease.
    pub fn campaign(&mut self, pre_vote: bool, leadership_transfer: bool) {
        if !self.is_promotable() {
            return;
        }
        if self.has_unapplied_conf_changes() {
            debug!(
                node = self.id.0,
                term = self.term.0,
                "not campaigning: a committed membership change is not applied yet"
            );
            return;
        }
        let vote_term = if pre_vote {
            self.become_pre_candidate();
            Term(self.term.0 + 1)
        } else {
            self.become_candidate();
            self.term
        };
        let own_id = self.id;
        if self.record_vote(own_id, true) {
            return;
        }
        let last_index = self.log.last_index();
        let last_term = self.log.last_term();
        let voters: Vec<_> = self
            .membership
            .voters
            .iter()
            .copied()
            .filter(|&v| v != own_id)
            .collect();
        for voter in voters {
            self.send_with_term(
                voter,
                vote_term,
                MessageBody::RequestVote {
                    last_index,
                    last_term,
                    pre_vote,
                    leadership_transfer,
                },
            );
        }
    }

    fn become_pre_candidate(&mut self) {
        // Term, vote and leader stay: a pre-vote must not disrupt anyone.
        self.votes.clear();
        self.progress.clear();
        self.role = Role::PreCandidate;
        self.leader = None;
        debug!(node = self.id.0, term = self.term.0, "became pre-candidate");
    }

    fn become_candidate(&mut self) {
        self.reset(Term(self.term.0 + 1));
        self.vote = Some(self.id);
        self.role = Role::Candidate;
        info!(node = self.id.0, term = self.term.0, "became candidate");
    }

    /// Records a vote and acts on the tally; returns whether the election
    /// is decided.
    fn record_vote(&mut self, from: crate::core::types::NodeId, granted: bool) -> bool {
        self.votes.entry(from).or_insert(granted);
        match vote_result(&self.membership.voters, &self.votes) {
            VoteResult::Won if self.role == Role::PreCandidate => {
                self.campaign(false, false);
                true
            }
            VoteResult::Won => {
                self.become_leader();
                true
            }
            VoteResult::Lost => {
                self.become_follower(self.term, None);
                true
            }
            VoteResult::Pending => false,
        }
    }

    /// Answers a (pre-)vote request at our term or above.
    pub fn on_request_vote(&mut self, message: Message) {
        let MessageBody::RequestVote {
            last_index,
            last_term,
            pre_vote,
            ..
        } = message.body
        else {
            unreachable!("on_request_vote takes vote requests only");
        };
        let can_vote = self.vote == Some(message.from)
            || (self.vote.is_none() && self.leader.is_none())
            || (pre_vote && message.term > self.term);
        if can_vote && self.log.is_up_to_date(last_index, last_term) {
            self.send_vote_response(message.from, message.term, pre_vote, true);
            if !pre_vote {
                self.election_elapsed = 0;
                self.vote = Some(message.from);
            }
        } else {
            self.send_vote_response(message.from, self.term, pre_vote, false);
        }
    }

    /// Sends a (pre-)vote answer carrying our commit index and its term.
    pub(crate) fn send_vote_response(
        &mut self,
        to: NodeId,
        term: Term,
        pre_vote: bool,
        granted: bool,
    ) {
        let committed = self.log.committed;
        let (commit, commit_term) = match self.log.term(committed) {
            Ok(commit_term) => (committed, commit_term),
            Err(_) => (LogIndex(0), Term(0)),
        };
        self.send_with_term(
            to,
            term,
            MessageBody::VoteResponse {
                pre_vote,
                granted,
                commit,
                commit_term,
            },
        );
    }

    /// Commits up to a peer's commit index when our log holds the entry
    /// there with the same term: by Log Matching our prefix up to it is
    /// the committed one. Without this a voter that missed the commit of
    /// its leader's self-removal can wait forever for that leader's vote:
    /// the removed node, back as a follower with a longer log, refuses it,
    /// and the survivor may not campaign on the new membership before it
    /// knows the change committed.
    pub fn learn_commit(&mut self, commit: LogIndex, commit_term: Term) {
        if self.log.maybe_commit(commit, commit_term) {
            debug!(
                node = self.id.0,
                commit = commit.0,
                "learned the commit index from a vote response"
            );
        }
    }

    /// Counts a (pre-)vote response.
    pub fn on_vote_response(
        &mut self,
        from: crate::core::types::NodeId,
        pre_vote: bool,
        granted: bool,
    ) {
        let expected = if pre_vote {
            Role::PreCandidate
        } else {
            Role::Candidate
        };
        if self.role != expected {
            return;
        }
        self.record_vote(from, granted);
    }

    /// Campaigns at once on the leader's request (leadership transfer).
    pub fn on_timeout_now(&mut self, from: crate::core::types::NodeId) {
        if !self.is_promotable() {
            debug!(from = from.0, "ignoring TimeoutNow: not a voter");
            return;
        }
        info!(
            node = self.id.0,
            term = self.term.0,
            "campaigning on TimeoutNow"
        );
        self.campaign(false, true);
    }
}
