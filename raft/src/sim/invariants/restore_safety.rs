//! Restore safety (Raft §7 with issue 15 §2's chunked restore into the
//! application, and the Ready contract of `core::ready`): the log may be
//! compacted only below what the application holds, and a follower's
//! application holding a partial restore is marked as such until the
//! restore finishes. Concretely:
//! - outside a restore, the application's applied index is at or above
//!   the log's compacted prefix: after every write of the node (a
//!   compaction past the applied index, or a snapshot installed before its
//!   restore was marked, fails here at once) and when it restarts (a
//!   restart from a state older than the prefix would have lost the
//!   entries in between for good);
//! - after every Ready, the core is restoring exactly when the application
//!   holds a restore mark, and a node restarted outside a restore resumes
//!   applying right after the application's applied index;
//! - an application marked as restoring applies no entry (checked by the
//!   application's own write, [`crate::sim::kv::KvState::write`], which
//!   also refuses a chunk that does not continue the restore).

use crate::core::{LogIndex, NodeId};
use crate::sim::invariants::{Invariants, Violation};

impl Invariants {
    /// Checks that `node`'s application, at `applied` and restoring or
    /// not, holds everything its log's compacted prefix `compacted`
    /// dropped; `when` names the moment.
    pub fn check_state_covers_log(
        &self,
        node: NodeId,
        applied: LogIndex,
        restoring: bool,
        compacted: LogIndex,
        when: &str,
    ) -> Result<(), Violation> {
        if restoring || applied >= compacted {
            return Ok(());
        }
        Err(Violation {
            invariant: "restore_safety",
            detail: format!(
                "node {node} {when}: its application applied {applied}, not restoring, but its log is compacted up to {compacted} (lost state)"
            ),
        })
    }

    /// Checks that `node`'s core and application agree after a Ready (or a
    /// restart): both restoring or neither, and outside a restore the same
    /// applied index.
    pub fn check_restore_mark(
        &self,
        node: NodeId,
        core: (bool, LogIndex),
        application: (bool, LogIndex),
    ) -> Result<(), Violation> {
        let (core_restoring, core_applied) = core;
        let (app_restoring, app_applied) = application;
        let agree =
            core_restoring == app_restoring && (app_restoring || core_applied == app_applied);
        if agree {
            return Ok(());
        }
        Err(Violation {
            invariant: "restore_safety",
            detail: format!(
                "node {node}: core restoring {core_restoring} applied {core_applied}, application restoring {app_restoring} applied {app_applied}"
            ),
        })
    }

    /// Returns the violation of an application write the application
    /// refused (`why`): an entry applied out of order or during a restore,
    /// or a chunk that does not continue its restore.
    pub fn refused_write(&self, node: NodeId, why: String) -> Violation {
        Violation {
            invariant: "restore_safety",
            detail: format!("node {node}: {why}"),
        }
    }
}
