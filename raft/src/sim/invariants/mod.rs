//! Safety invariants of Raft, checked by the simulator after every step,
//! one property per file (Raft paper §5.2, Figure 3):
//! - [`election_safety`]: at most one leader per term;
//! - [`leader_append_only`]: a leader never overwrites or deletes its log;
//! - [`log_matching`]: same index and term means same entry and same prefix;
//! - [`leader_completeness`]: a new leader holds every committed entry;
//! - [`state_machine_safety`]: no two nodes apply different entries at one
//!   index, and no node's applied sequence ever changes.
//!
//! The linearizability of the client history is checked at the end of a
//! run by [`crate::sim::linearizability`].

pub mod election_safety;
pub mod leader_append_only;
pub mod leader_completeness;
pub mod log_matching;
pub mod state_machine_safety;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::hash::{DefaultHasher, Hash, Hasher};

use crate::core::{LogIndex, NodeId, Term};

/// A broken invariant, with what was seen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The property, e.g. `election_safety`.
    pub invariant: &'static str,
    /// What was observed.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} violated: {}", self.invariant, self.detail)
    }
}

/// What the checkers remember across steps.
#[derive(Debug, Default)]
pub struct Invariants {
    /// Election safety: the leader of each term.
    leaders_by_term: BTreeMap<Term, NodeId>,
    /// Log matching: (index, term) -> (payload hash, term of the entry
    /// before it). Lookups only, never iterated.
    entries: HashMap<(LogIndex, Term), (u64, Term)>,
    /// State machine safety: index -> (term, payload hash) of every entry
    /// applied anywhere (all of them committed).
    applied: HashMap<LogIndex, (Term, u64)>,
    /// The highest index applied anywhere.
    applied_max: LogIndex,
    /// Each node's last applied index, for the no-gap, no-change check.
    last_applied: BTreeMap<NodeId, LogIndex>,
}

/// Returns a stable hash of an entry payload.
pub fn payload_hash(data: &[u8]) -> u64 {
    let mut hasher = DefaultHasher::new();
    data.hash(&mut hasher);
    hasher.finish()
}

impl Invariants {
    /// Returns the term of the committed entry at `index`, if any node
    /// applied it.
    pub fn committed_term(&self, index: LogIndex) -> Option<Term> {
        self.applied.get(&index).map(|&(term, _)| term)
    }

    /// Returns the highest index applied by any node.
    pub fn applied_max(&self) -> LogIndex {
        self.applied_max
    }
}
