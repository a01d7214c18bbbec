//! Leader Completeness (Raft §5.4, §5.4.3, Figure 3): if an entry is
//! committed in a term, it is present in the logs of the leaders of all
//! later terms.
//!
//! What is committed is learned from every node's commit index (not only
//! from what was applied): each index a node counts committed is recorded
//! with its entry's term and the lowest term of a node seen counting it,
//! and two nodes counting different entries committed at one index fail at
//! once. Every leader is then checked after every Ready it handles, not
//! only when it takes office: its log must hold every recorded entry
//! committed in its term or earlier, except those below its snapshot,
//! which the snapshot covers. Each (leader, term) is checked
//! incrementally: a leader never rewrites its log (Leader Append-Only), so
//! what was checked stays checked.

use crate::core::{LogIndex, NodeId, Term};
use crate::sim::invariants::{CommittedEntry, Invariants, Violation};

impl Invariants {
    /// Records that `node`, in `term`, counts every entry up to `commit`
    /// committed; `term_at` reads its log (`None` below its snapshot).
    pub fn observe_commit(
        &mut self,
        node: NodeId,
        term: Term,
        commit: LogIndex,
        term_at: impl Fn(LogIndex) -> Option<Term>,
    ) -> Result<(), Violation> {
        // By Log Matching, agreeing at the commit index means agreeing on
        // the whole committed prefix.
        if commit <= self.committed_max {
            if let (Some(known), Some(found)) = (self.committed.get_mut(&commit), term_at(commit)) {
                if known.term != found {
                    return Err(Violation {
                        invariant: "leader_completeness",
                        detail: format!(
                            "node {node} (term {term}) counts index {commit} of term {found} committed, \
                             the entry committed there (in term {}) has term {}",
                            known.committed_in, known.term
                        ),
                    });
                }
                known.committed_in = known.committed_in.min(term);
            }
            return Ok(());
        }
        let mut index = self.committed_max.next();
        while index <= commit {
            if let Some(found) = term_at(index) {
                self.committed.insert(
                    index,
                    CommittedEntry {
                        term: found,
                        committed_in: term,
                    },
                );
            }
            index = index.next();
        }
        self.committed_max = commit;
        Ok(())
    }

    /// Checks the log of `node`, leader of `term`, read through `term_at`,
    /// which covers `[first_index, last_index]`, against every entry
    /// committed in `term` or earlier.
    pub fn check_leader_complete(
        &mut self,
        node: NodeId,
        term: Term,
        first_index: LogIndex,
        last_index: LogIndex,
        term_at: impl Fn(LogIndex) -> Option<Term>,
    ) -> Result<(), Violation> {
        let checked = self.leader_checked.entry((node, term)).or_default();
        let mut index = checked.next().max(first_index);
        while index <= self.committed_max {
            if let Some(entry) = self.committed.get(&index)
                && entry.committed_in <= term
            {
                let found = if index <= last_index {
                    term_at(index)
                } else {
                    None
                };
                if found != Some(entry.term) {
                    return Err(Violation {
                        invariant: "leader_completeness",
                        detail: format!(
                            "leader {node} of term {term} has {found:?} at index {index} (log ends at \
                             {last_index}), but the entry of term {} there was committed in term {}",
                            entry.term, entry.committed_in
                        ),
                    });
                }
            }
            index = index.next();
        }
        *checked = self.committed_max.max(*checked);
        Ok(())
    }
}
