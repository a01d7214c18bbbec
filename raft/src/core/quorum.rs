//! Majority arithmetic over a set of voters.

use std::collections::{BTreeMap, BTreeSet};

use crate::core::progress::Progress;
use crate::core::types::{LogIndex, NodeId};

/// The outcome of an election so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VoteResult {
    /// A majority granted.
    Won,
    /// A majority refused.
    Lost,
    /// Neither yet.
    Pending,
}

/// Returns the highest index stored on a majority of voters.
pub fn committed_index(
    voters: &BTreeSet<NodeId>,
    progress: &BTreeMap<NodeId, Progress>,
) -> LogIndex {
    if voters.is_empty() {
        return LogIndex(0);
    }
    let mut matched: Vec<LogIndex> = voters
        .iter()
        .map(|voter| progress.get(voter).map_or(LogIndex(0), |p| p.matched))
        .collect();
    matched.sort_unstable_by(|a, b| b.cmp(a));
    matched[voters.len() / 2]
}

/// Tallies the votes of `voters`.
pub fn vote_result(voters: &BTreeSet<NodeId>, votes: &BTreeMap<NodeId, bool>) -> VoteResult {
    let quorum = voters.len() / 2 + 1;
    let granted = voters
        .iter()
        .filter(|v| votes.get(v) == Some(&true))
        .count();
    let refused = voters
        .iter()
        .filter(|v| votes.get(v) == Some(&false))
        .count();
    if granted >= quorum {
        VoteResult::Won
    } else if refused > voters.len() - quorum {
        VoteResult::Lost
    } else {
        VoteResult::Pending
    }
}

/// Returns whether a majority of voters is in `acks`.
pub fn has_quorum(voters: &BTreeSet<NodeId>, acks: impl Fn(NodeId) -> bool) -> bool {
    voters.iter().filter(|&&v| acks(v)).count() > voters.len() / 2
}
