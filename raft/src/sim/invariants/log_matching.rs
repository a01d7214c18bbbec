//! Log Matching (Raft §5.3, Figure 3): if two logs contain an entry with the
//! same index and term, the logs are identical in all entries up through
//! that index.
//!
//! Checked incrementally: every persisted entry (index, term) must carry
//! the same payload and follow an entry of the same term on every node.
//! By induction on the index this gives identical prefixes.

use crate::core::{Entry, NodeId, Term};
use crate::sim::invariants::{Invariants, Violation, payload_hash};

impl Invariants {
    /// Records entries persisted by `node`; `previous_term` is the term of
    /// the entry before the first one in that node's log.
    pub fn observe_persisted(
        &mut self,
        node: NodeId,
        entries: &[Entry],
        mut previous_term: Term,
    ) -> Result<(), Violation> {
        for entry in entries {
            let seen = (payload_hash(&entry.data), previous_term);
            let first = *self
                .entries
                .entry((entry.index, entry.term))
                .or_insert(seen);
            if first != seen {
                return Err(Violation {
                    invariant: "log_matching",
                    detail: format!(
                        "node {node} holds entry (index {}, term {}) with payload/previous term {:?}, \
                         another node holds {:?}",
                        entry.index, entry.term, seen, first
                    ),
                });
            }
            previous_term = entry.term;
        }
        Ok(())
    }
}
