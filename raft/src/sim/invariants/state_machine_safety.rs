//! State Machine Safety (Raft §5.4.3, Figure 3): if a server has applied a
//! log entry at a given index, no other server ever applies a different log
//! entry for the same index. Also: each node applies indexes in order with
//! no gap, so what it applied never changes; and a snapshot taken or
//! restored at an index holds the same state on every node (a snapshot is
//! the applied state, so a chunk corrupted in flight and installed anyway
//! fails here).

use crate::core::{Entry, LogIndex, NodeId, Term};
use crate::sim::invariants::{Invariants, Violation, payload_hash};

impl Invariants {
    /// Records that `node` applied `entry`.
    pub fn observe_applied(&mut self, node: NodeId, entry: &Entry) -> Result<(), Violation> {
        let last = self.last_applied.entry(node).or_default();
        if entry.index != last.next() {
            return Err(Violation {
                invariant: "state_machine_safety",
                detail: format!("node {node} applied index {} after {last}", entry.index),
            });
        }
        *last = entry.index;
        let seen = (entry.term, payload_hash(&entry.data));
        let first = *self.applied.entry(entry.index).or_insert(seen);
        if first != seen {
            return Err(Violation {
                invariant: "state_machine_safety",
                detail: format!(
                    "node {node} applied (term {}, payload {:x}) at index {}, another node applied (term {}, payload {:x})",
                    seen.0, seen.1, entry.index, first.0, first.1
                ),
            });
        }
        self.applied_max = self.applied_max.max(entry.index);
        Ok(())
    }

    /// Records that `node` restored its state from a snapshot at `index`
    /// with `term` (at start or from the leader).
    pub fn observe_restored(
        &mut self,
        node: NodeId,
        index: LogIndex,
        term: Term,
    ) -> Result<(), Violation> {
        if let Some(&(committed, _)) = self.applied.get(&index)
            && committed != term
        {
            return Err(Violation {
                invariant: "state_machine_safety",
                detail: format!(
                    "node {node} restored a snapshot at {index} of term {term}, committed term is {committed}"
                ),
            });
        }
        let last = self.last_applied.entry(node).or_default();
        *last = index;
        self.applied_max = self.applied_max.max(index);
        Ok(())
    }

    /// Records that `node` took or restored a snapshot at `index` whose
    /// data is `data`.
    pub fn observe_snapshot_data(
        &mut self,
        node: NodeId,
        index: LogIndex,
        data: &[u8],
    ) -> Result<(), Violation> {
        let seen = payload_hash(data);
        let first = *self.snapshots.entry(index).or_insert(seen);
        if first != seen {
            return Err(Violation {
                invariant: "state_machine_safety",
                detail: format!(
                    "node {node} holds a snapshot at {index} with data {seen:x}, another node's has {first:x}"
                ),
            });
        }
        Ok(())
    }

    /// Forgets `node`'s applied position when it restarts from scratch.
    pub fn observe_restart(&mut self, node: NodeId, applied: LogIndex) {
        self.last_applied.insert(node, applied);
    }
}
