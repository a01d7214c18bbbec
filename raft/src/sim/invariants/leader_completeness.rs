//! Leader Completeness (Raft §5.4, Figure 3): if an entry is committed in a
//! term, it is present in the logs of the leaders of all later terms.
//!
//! Checked when a node becomes leader: its log must hold every entry any
//! node has applied (applied implies committed), except those below its
//! snapshot, which the snapshot covers.

use crate::core::{LogIndex, NodeId, Term};
use crate::sim::invariants::{Invariants, Violation};

impl Invariants {
    /// Checks a new leader's log, read through `term_at`, which covers
    /// `[first_index, last_index]`.
    pub fn check_new_leader(
        &self,
        node: NodeId,
        first_index: LogIndex,
        last_index: LogIndex,
        term_at: impl Fn(LogIndex) -> Option<Term>,
    ) -> Result<(), Violation> {
        if last_index < self.applied_max {
            return Err(Violation {
                invariant: "leader_completeness",
                detail: format!(
                    "leader {node} log ends at {last_index} but index {} is committed",
                    self.applied_max
                ),
            });
        }
        let mut index = first_index;
        while index <= self.applied_max {
            let committed = self.applied.get(&index).map(|&(term, _)| term);
            if let Some(committed) = committed
                && term_at(index) != Some(committed)
            {
                return Err(Violation {
                    invariant: "leader_completeness",
                    detail: format!(
                        "leader {node} has term {:?} at index {index}, committed term is {committed}",
                        term_at(index)
                    ),
                });
            }
            index = index.next();
        }
        Ok(())
    }
}
