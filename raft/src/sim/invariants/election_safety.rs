//! Election Safety (Raft §5.2, Figure 3): at most one leader can be elected
//! in a given term.
//!
//! Checked continuously: after every Ready a node handles, if it leads, its
//! term is recorded; a second node leading a recorded term fails, even if
//! the simulator never saw it take office (it crashed in that Ready).

use crate::core::{NodeId, Term};
use crate::sim::invariants::{Invariants, Violation};

impl Invariants {
    /// Records that `node` leads `term`; fails if another node led it.
    pub fn observe_leader(&mut self, node: NodeId, term: Term) -> Result<(), Violation> {
        let leader = *self.leaders_by_term.entry(term).or_insert(node);
        if leader != node {
            return Err(Violation {
                invariant: "election_safety",
                detail: format!("nodes {leader} and {node} both lead term {term}"),
            });
        }
        Ok(())
    }
}
