//! Safety invariants of Raft, checked by the simulator after every step,
//! one property per file (Raft paper §5.2, §5.4, Figures 2 and 3):
//! - [`election_safety`]: at most one leader per term, checked for every
//!   node that leads after each Ready it handles, not only on taking
//!   office;
//! - [`leader_append_only`]: a leader never overwrites or deletes its log;
//! - [`log_matching`]: same index and term means same entry and same prefix;
//! - [`leader_completeness`]: every leader holds every entry committed in
//!   an earlier term, checked continuously against everything any node
//!   counts committed (its commit index), not only what was applied;
//! - [`commit_safety`]: when a leader advances its commit index, no node
//!   lacking that entry could still win an election (crashed nodes count
//!   with their disks);
//! - [`vote_uniqueness`]: a node votes for at most one candidate per term,
//!   across restarts (the vote it acted on is on its disk when it comes
//!   back);
//! - [`state_machine_safety`]: no two nodes apply different entries at
//!   one index, no node's applied sequence ever changes, and every state
//!   a node pins, restores or restarts with at index i equals the
//!   reference state at i (built from the entries applied anywhere);
//! - [`restore_safety`]: an application restoring a snapshot applies
//!   nothing, its restore mark agrees with the core's, and it never holds
//!   less than the log's compacted prefix outside a restore (state lost by
//!   compacting past what was applied), at restart or after any write.
//!
//! The linearizability of the client history is checked at the end of a
//! run by the `linearizability` crate.

pub mod commit_safety;
pub mod election_safety;
pub mod leader_append_only;
pub mod leader_completeness;
pub mod log_matching;
pub mod restore_safety;
pub mod state_machine_safety;
pub mod vote_uniqueness;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::hash::{DefaultHasher, Hash, Hasher};

use crate::core::{LogIndex, NodeId, Status, Term};
use crate::sim::app::SimMachine;

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
#[derive(Debug)]
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
    /// State machine safety: the reference state, built from the first
    /// application of each index anywhere.
    reference: Box<dyn ReferenceMachine>,
    /// The index the reference state is at.
    reference_applied: LogIndex,
    /// The digest of the reference state at each index from 0 up to
    /// `reference_applied` (the bootstrap prefix, index 1, and index 0
    /// are the empty state).
    reference_digests: Vec<u64>,
    /// Leader completeness: index -> committed entry (below the highest
    /// committed index; an index a node skipped by a snapshot may be
    /// missing). Lookups only.
    committed: HashMap<LogIndex, CommittedEntry>,
    /// The highest index any node counted committed.
    committed_max: LogIndex,
    /// Leader completeness: (leader, term) -> the index up to which its log
    /// was checked against the committed entries.
    leader_checked: BTreeMap<(NodeId, Term), LogIndex>,
    /// Commit safety: each node's commit index as last checked (reset on
    /// restart, which may take it back).
    commit_checked: BTreeMap<NodeId, LogIndex>,
    /// Vote uniqueness: (voter, term) -> the candidate it voted for.
    votes: BTreeMap<(NodeId, Term), NodeId>,
}

/// An entry some node counts committed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommittedEntry {
    /// The entry's term.
    pub term: Term,
    /// The lowest term of a node seen counting it committed: the entry was
    /// committed in that term or earlier, so every leader of a later term
    /// must hold it.
    pub committed_in: Term,
}

/// Returns a stable hash of an entry payload.
pub fn payload_hash(data: &[u8]) -> u64 {
    let mut hasher = DefaultHasher::new();
    data.hash(&mut hasher);
    hasher.finish()
}

/// The reference state state machine safety keeps: the simulated
/// application, seen only through what the check needs.
pub trait ReferenceMachine: fmt::Debug {
    /// Applies one committed payload.
    fn apply_payload(&mut self, index: LogIndex, data: &[u8]);
    /// Returns the state's digest.
    fn state_digest(&self) -> u64;
}

impl<M: SimMachine> ReferenceMachine for M {
    fn apply_payload(&mut self, index: LogIndex, data: &[u8]) {
        self.apply(index, data);
    }

    fn state_digest(&self) -> u64 {
        self.digest()
    }
}

impl Invariants {
    /// Returns the checkers of a group replicating `M`, whose reference
    /// state starts as `reference` (the blank machine) at the bootstrap
    /// prefix.
    pub fn new<M: SimMachine>(reference: M) -> Invariants {
        let empty = reference.digest();
        Invariants {
            leaders_by_term: BTreeMap::new(),
            entries: HashMap::new(),
            applied: HashMap::new(),
            applied_max: LogIndex(0),
            last_applied: BTreeMap::new(),
            reference: Box::new(reference),
            reference_applied: LogIndex(1),
            reference_digests: vec![empty, empty],
            committed: HashMap::new(),
            committed_max: LogIndex(0),
            leader_checked: BTreeMap::new(),
            commit_checked: BTreeMap::new(),
            votes: BTreeMap::new(),
        }
    }
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

    /// Returns the highest index any node counted committed.
    pub fn committed_max(&self) -> LogIndex {
        self.committed_max
    }

    /// Checks what holds of `node` while it leads, as `status` describes
    /// it: it is the only leader of its term (election safety) and holds
    /// every entry committed so far (leader completeness).
    pub fn check_leading(
        &mut self,
        node: NodeId,
        status: &Status,
        term_at: impl Fn(LogIndex) -> Option<Term>,
    ) -> Result<(), Violation> {
        self.observe_leader(node, status.term)?;
        self.check_leader_complete(
            node,
            status.term,
            status.first_index,
            status.last_index,
            term_at,
        )
    }
}
