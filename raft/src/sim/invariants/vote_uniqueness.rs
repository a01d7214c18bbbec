//! Vote uniqueness (Raft §5.2 and Figure 2, "Persistent state on all
//! servers"): each server votes for at most one candidate in a given term,
//! on a first-come-first-served basis, and `currentTerm` and `votedFor`
//! are on stable storage before it answers.
//!
//! A vote counts once the node acts on it: it sends a granted vote answer,
//! or it asks for votes as a candidate (it voted for itself). Each is
//! recorded per (voter, term); a second candidate in one term fails, even
//! across restarts. When a node restarts, its disk must hold every vote it
//! acted on: a term below the last one it voted in, or another vote in
//! that term, means the vote was not durable before it left (a restart
//! could vote again).

use crate::core::{HardState, NodeId, Term};
use crate::sim::invariants::{Invariants, Violation};

impl Invariants {
    /// Records that `voter` acted on a vote for `candidate` in `term`.
    pub fn observe_vote(
        &mut self,
        voter: NodeId,
        term: Term,
        candidate: NodeId,
    ) -> Result<(), Violation> {
        let first = *self.votes.entry((voter, term)).or_insert(candidate);
        if first != candidate {
            return Err(Violation {
                invariant: "vote_uniqueness",
                detail: format!(
                    "node {voter} voted for {first} and for {candidate} in term {term}"
                ),
            });
        }
        Ok(())
    }

    /// Checks the hard state `node` restarts with against the last vote it
    /// acted on.
    pub fn check_restart_votes(&self, node: NodeId, durable: HardState) -> Result<(), Violation> {
        let last_vote = self
            .votes
            .range((node, Term(0))..=(node, Term(u64::MAX)))
            .next_back();
        match last_vote {
            Some((&(_, term), &candidate))
                if term > durable.term
                    || (term == durable.term && durable.vote != Some(candidate)) =>
            {
                Err(Violation {
                    invariant: "vote_uniqueness",
                    detail: format!(
                        "node {node} voted for {candidate} in term {term} but restarts with term {} \
                         and vote {:?}: the vote was not durable before it acted on it",
                        durable.term, durable.vote
                    ),
                })
            }
            _ => Ok(()),
        }
    }
}
