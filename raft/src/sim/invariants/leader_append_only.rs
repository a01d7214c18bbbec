//! Leader Append-Only (Raft §5.3, Figure 3): a leader never overwrites or
//! deletes entries in its log; it only appends new ones.

use crate::core::{Entry, LogIndex, NodeId};
use crate::sim::invariants::{Invariants, Violation};

impl Invariants {
    /// Checks entries a leader persists against its durable last index.
    pub fn check_leader_appends(
        &self,
        node: NodeId,
        entries: &[Entry],
        durable_last: LogIndex,
    ) -> Result<(), Violation> {
        match entries.first() {
            Some(first) if first.index != durable_last.next() => Err(Violation {
                invariant: "leader_append_only",
                detail: format!(
                    "leader {node} persists entries from {} over its log ending at {durable_last}",
                    first.index
                ),
            }),
            _ => Ok(()),
        }
    }
}
