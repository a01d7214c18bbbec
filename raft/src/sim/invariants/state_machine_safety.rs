//! State Machine Safety (Raft §5.4.3, Figure 3): if a server has applied a
//! log entry at a given index, no other server ever applies a different log
//! entry for the same index. Also: each node applies indexes in order with
//! no gap, so what it applied never changes; and since the application's
//! state is its snapshot (§7, issue 15 §2), every state observed whole at
//! an index (a view a leader pins for a follower, a restore as it
//! finishes, a state a node restarts with or compacts its log under)
//! equals the reference state at that index. The reference applies each
//! index once, the first time any node applies it, and keeps the digest
//! of its state at every index, so a chunk lost, skipped, duplicated or
//! corrupted on the way into a follower's state fails here at the end of
//! the restore, and a view that is not the state at its index fails when
//! it is pinned.
//!
//! The reference starts at the bootstrap prefix (index 1, the empty
//! state): every simulated group bootstraps with one.

use crate::core::{Entry, EntryKind, LogIndex, NodeId, Term};
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
        self.advance_reference(node, entry)
    }

    /// Applies `entry` to the reference state if it is the next index.
    fn advance_reference(&mut self, node: NodeId, entry: &Entry) -> Result<(), Violation> {
        if entry.index <= self.reference_applied {
            return Ok(());
        }
        if entry.index != self.reference_applied.next() {
            return Err(Violation {
                invariant: "state_machine_safety",
                detail: format!(
                    "node {node} applied index {} though no node ever held the state at {}",
                    entry.index,
                    entry.index.prev()
                ),
            });
        }
        // As the nodes do: the application sees normal payloads only.
        let data: &[u8] = match entry.kind {
            EntryKind::Normal => &entry.data,
            EntryKind::ConfChange => &[],
        };
        self.reference.apply_payload(entry.index, data);
        self.reference_applied = entry.index;
        self.reference_digests.push(self.reference.state_digest());
        Ok(())
    }

    /// Checks that the state `node` holds whole at `index` (`what`: pinned,
    /// restored, ...) has the reference state's `digest`.
    pub fn check_state(
        &self,
        node: NodeId,
        index: LogIndex,
        digest: u64,
        what: &str,
    ) -> Result<(), Violation> {
        let expected = usize::try_from(index.0)
            .ok()
            .and_then(|at| self.reference_digests.get(at));
        match expected {
            Some(&expected) if expected == digest => Ok(()),
            Some(&expected) => Err(Violation {
                invariant: "state_machine_safety",
                detail: format!(
                    "node {node} {what} a state at {index} with digest {digest:x}, the state at {index} has {expected:x}"
                ),
            }),
            None => Err(Violation {
                invariant: "state_machine_safety",
                detail: format!(
                    "node {node} {what} a state at {index}, beyond every index applied ({})",
                    self.reference_applied
                ),
            }),
        }
    }

    /// Records that `node` restored its state from a snapshot at `index`
    /// with `term`.
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

    /// Sets `node`'s applied position when it restarts with its
    /// application at `applied`.
    pub fn observe_restart(&mut self, node: NodeId, applied: LogIndex) {
        self.last_applied.insert(node, applied);
    }
}
