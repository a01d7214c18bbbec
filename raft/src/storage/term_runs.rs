//! The terms of a stored log, kept in memory as runs: the first index of
//! each run of entries that share a term. Terms only grow along a log and
//! change only at elections, so a log of any length is a handful of runs,
//! and the core's frequent term lookups (the previous entry of every
//! append, the last entry, the commit) cost a binary search instead of a
//! read of the whole entry from RocksDB.
//!
//! Invariants (kept by the storage that owns it, which changes it only
//! after the write it mirrors succeeded):
//! - Run starts strictly increase, and so do their terms.
//! - The runs describe every stored entry: an entry's term is the term of
//!   the last run starting at or below its index. Below the first stored
//!   entry they may still describe compacted entries; nothing asks there.

use crate::core::{LogIndex, Term};

/// The terms of the stored entries, as runs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct TermRuns {
    /// The first index of each run and the run's term.
    runs: Vec<(LogIndex, Term)>,
}

impl TermRuns {
    /// Returns the term of the stored entry at `index`, or `None` if no
    /// run starts at or below it (the caller checks `index` is stored).
    pub(super) fn term(&self, index: LogIndex) -> Option<Term> {
        let after = self.runs.partition_point(|&(start, _)| start <= index);
        after.checked_sub(1).map(|run| self.runs[run].1)
    }

    /// Records that the entry at `index`, the new last one, has `term`.
    /// Entries at and after `index` that were stored before are
    /// forgotten first (an append over a deposed leader's suffix).
    pub(super) fn append(&mut self, index: LogIndex, term: Term) {
        self.truncate_from(index);
        if self.runs.last().is_none_or(|&(_, last)| last != term) {
            self.runs.push((index, term));
        }
    }

    /// Forgets the entries at and after `index`.
    fn truncate_from(&mut self, index: LogIndex) {
        let kept = self.runs.partition_point(|&(start, _)| start < index);
        self.runs.truncate(kept);
    }

    /// Forgets the runs that hold only entries at or below `index` (a
    /// compaction or an installed snapshot dropped them); the run holding
    /// `index + 1` stays.
    pub(super) fn drop_through(&mut self, index: LogIndex) {
        let holding_next = self
            .runs
            .partition_point(|&(start, _)| start <= index.next())
            .saturating_sub(1);
        self.runs.drain(..holding_next);
    }

    /// Forgets every entry (the log is empty).
    pub(super) fn clear(&mut self) {
        self.runs.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runs_of(terms: &[(u64, u64)]) -> TermRuns {
        let mut runs = TermRuns::default();
        for &(index, term) in terms {
            runs.append(LogIndex(index), Term(term));
        }
        runs
    }

    #[test]
    fn entries_of_one_term_are_one_run() {
        let runs = runs_of(&[(1, 1), (2, 1), (3, 1), (4, 2), (5, 2), (6, 4)]);
        assert_eq!(runs.runs.len(), 3);
        let terms: Vec<u64> = (1..=6).map(|i| runs.term(LogIndex(i)).unwrap().0).collect();
        assert_eq!(terms, [1, 1, 1, 2, 2, 4]);
        assert_eq!(runs.term(LogIndex(0)), None);
    }

    #[test]
    fn an_append_over_a_suffix_replaces_its_terms() {
        let mut runs = runs_of(&[(1, 1), (2, 2), (3, 2), (4, 3)]);
        runs.append(LogIndex(3), Term(5));
        assert_eq!(runs.term(LogIndex(2)), Some(Term(2)));
        assert_eq!(runs.term(LogIndex(3)), Some(Term(5)));
        runs.append(LogIndex(2), Term(2));
        assert_eq!(runs.term(LogIndex(2)), Some(Term(2)));
        assert_eq!(runs, runs_of(&[(1, 1), (2, 2)]));
    }

    #[test]
    fn dropping_a_prefix_keeps_the_run_of_the_next_entry() {
        let mut runs = runs_of(&[(1, 1), (2, 1), (3, 2), (4, 2), (5, 3)]);
        runs.drop_through(LogIndex(3));
        assert_eq!(runs.term(LogIndex(4)), Some(Term(2)));
        assert_eq!(runs.term(LogIndex(5)), Some(Term(3)));
        assert_eq!(runs.runs.len(), 2);
        runs.drop_through(LogIndex(4));
        assert_eq!(runs.term(LogIndex(5)), Some(Term(3)));
        assert_eq!(runs.runs.len(), 1);
    }
}
