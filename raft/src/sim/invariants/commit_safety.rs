//! Commit safety (Raft §5.4.1, §5.4.2 and Figure 8): an entry a leader
//! counts committed can never be lost, so when a leader advances its commit
//! index, no node whose log lacks that entry may still be able to win an
//! election.
//!
//! "Could win" over-approximates every election the node might run later:
//! it ignores terms, votes already cast, PreVote and leader leases (none
//! of which Raft's safety relies on) and asks only whether enough voters
//! would find its log at least as up-to-date as theirs (§5.4.1). Every
//! node counts, crashed ones with what their disks hold (what they will
//! restart with), and only decommissioned ones can neither run nor vote.
//! The node campaigns either in the committing leader's membership or in
//! its own (for a crashed node: its snapshot's membership plus the changes
//! its disk counts committed). In correct Raft every log lacking a
//! committed entry is less up-to-date than every log holding it, and the
//! holders form a majority of every membership a candidate may count, so
//! the check never fires; committing an earlier term's entry by counting
//! replicas (the Figure 8 bug) fires it at the moment of the commit, long
//! before a second leader actually overwrites the entry.

use std::collections::BTreeSet;

use crate::core::{LogIndex, NodeId, Term};
use crate::sim::invariants::{Invariants, Violation};

/// What one node would bring to an election, read from its disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ElectionView {
    /// The node.
    pub id: NodeId,
    /// The (term, index) of the last entry on its disk.
    pub last: (Term, LogIndex),
    /// Whether its disk holds the entry being committed (an entry at or
    /// below its snapshot counts as held).
    pub holds: bool,
    /// Whether it can ever run again (false once decommissioned): only
    /// then can it campaign or vote.
    pub runs: bool,
    /// The voters it would count if it campaigned; filled in only for a
    /// node that runs and lacks the entry.
    pub voters: BTreeSet<NodeId>,
}

impl Invariants {
    /// Returns whether `node`'s commit index advanced past what was last
    /// checked, and records it.
    pub fn commit_advanced(&mut self, node: NodeId, commit: LogIndex) -> bool {
        let checked = self.commit_checked.entry(node).or_default();
        let advanced = commit > *checked;
        *checked = commit;
        advanced
    }

    /// Checks that no node lacking the entry (`commit`, `entry_term`), which
    /// `leader` of `term` just counted committed among `leader_voters`,
    /// could win an election; `views` describes every node.
    pub fn check_commit_safe(
        &self,
        leader: NodeId,
        term: Term,
        commit: LogIndex,
        entry_term: Term,
        leader_voters: &BTreeSet<NodeId>,
        views: &[ElectionView],
    ) -> Result<(), Violation> {
        for candidate in views.iter().filter(|view| view.runs && !view.holds) {
            for voters in [leader_voters, &candidate.voters] {
                if !voters.contains(&candidate.id) {
                    continue;
                }
                let granting: Vec<NodeId> = views
                    .iter()
                    .filter(|view| voters.contains(&view.id) && view.runs)
                    .filter(|view| view.id == candidate.id || candidate.last >= view.last)
                    .map(|view| view.id)
                    .collect();
                if granting.len() * 2 > voters.len() {
                    return Err(Violation {
                        invariant: "commit_safety",
                        detail: format!(
                            "leader {leader} of term {term} counts index {commit} (term {entry_term}) \
                             committed, but node {} lacks it and could win with the votes of \
                             {granting:?} among voters {voters:?} (its last entry: term {}, index {})",
                            candidate.id, candidate.last.0, candidate.last.1
                        ),
                    });
                }
            }
        }
        Ok(())
    }
}
