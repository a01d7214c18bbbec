//! [`AppliedSizes`]: the sizes of the last applied log entries, so that
//! compaction keeps a bounded number of bytes of log below the applied
//! index as well as a bounded number of entries.
//!
//! Invariants:
//! - Entries are held oldest first, in increasing index, at most `limit`
//!   of them (the entry bound of compaction: nothing older can be kept).
//! - [`AppliedSizes::boundary`] never names an index whose removal would
//!   leave more than the byte budget behind it among the entries held.
//! - [`AppliedSizes::bytes_floor`] keeps at least `keep_bytes` and at most
//!   `keep_bytes_for_followers`: it never goes below a lagging follower's
//!   position by more than the wider budget allows.

use std::collections::VecDeque;

use crate::core::{Entry, LogIndex};

/// The index and size of the last applied entries.
#[derive(Debug)]
pub struct AppliedSizes {
    sizes: VecDeque<(LogIndex, u64)>,
    limit: usize,
}

impl AppliedSizes {
    /// Returns an empty record holding at most `limit` entries.
    pub fn new(limit: u64) -> AppliedSizes {
        AppliedSizes {
            sizes: VecDeque::new(),
            limit: usize::try_from(limit).unwrap_or(usize::MAX),
        }
    }

    /// Records entries just applied, dropping the oldest past the limit.
    pub fn applied(&mut self, entries: &[Entry]) {
        self.sizes.extend(
            entries
                .iter()
                .map(|entry| (entry.index, entry.size_bytes())),
        );
        while self.sizes.len() > self.limit {
            self.sizes.pop_front();
        }
    }

    /// Forgets every entry (a snapshot replaced the log).
    pub fn clear(&mut self) {
        self.sizes.clear();
    }

    /// Returns the highest index compaction must reach so that at most
    /// `keep_bytes` of the entries held stay after it: the newest entry
    /// whose bytes, with those of every newer one, pass the budget (0 when
    /// they all fit).
    pub fn boundary(&self, keep_bytes: u64) -> LogIndex {
        let mut kept = 0u64;
        for &(index, bytes) in self.sizes.iter().rev() {
            kept += bytes;
            if kept > keep_bytes {
                return index;
            }
        }
        LogIndex(0)
    }

    /// Returns the highest index compaction must reach for the byte bound:
    /// at most `keep_bytes` stay after it, unless a follower (on a leader,
    /// the lowest index every follower holds: `followers_matched`) still
    /// needs older entries, which are then kept down to its position, but
    /// never more than `keep_bytes_for_followers` of them. A follower a
    /// little behind catches up from the log, and while every follower
    /// keeps up the log's tail stays small enough to die in the memtable.
    pub fn bytes_floor(
        &self,
        keep_bytes: u64,
        keep_bytes_for_followers: u64,
        followers_matched: Option<LogIndex>,
    ) -> LogIndex {
        let floor = self.boundary(keep_bytes);
        match followers_matched {
            Some(matched) if matched < floor => {
                matched.max(self.boundary(keep_bytes_for_followers))
            }
            _ => floor,
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::core::{EntryKind, Term};

    fn entry(index: u64, payload: usize) -> Entry {
        Entry {
            index: LogIndex(index),
            term: Term(1),
            kind: EntryKind::Normal,
            data: Bytes::from(vec![0u8; payload]),
        }
    }

    // Goal: large entries are cut to the byte budget, small ones kept up
    // to the entry limit, and a snapshot forgets everything.
    #[test]
    fn the_boundary_keeps_the_byte_budget_and_the_entry_limit() {
        let mut sizes = AppliedSizes::new(4);
        let one = entry(1, 100).size_bytes();
        sizes.applied(&[entry(1, 100), entry(2, 100), entry(3, 100)]);
        assert_eq!(sizes.boundary(3 * one), LogIndex(0), "all three fit");
        assert_eq!(sizes.boundary(2 * one), LogIndex(1), "the newest two fit");
        assert_eq!(sizes.boundary(one - 1), LogIndex(3), "none fits");
        sizes.applied(&[entry(4, 100), entry(5, 100), entry(6, 100)]);
        assert_eq!(
            sizes.boundary(u64::MAX),
            LogIndex(0),
            "only the last four are held: the entry limit covers the rest"
        );
        assert_eq!(sizes.boundary(4 * one - 1), LogIndex(3));
        sizes.clear();
        assert_eq!(sizes.boundary(0), LogIndex(0));
    }

    // Goal: a follower that lags keeps the entries it still needs, within
    // the wider budget; one that keeps up leaves only the small budget.
    #[test]
    fn the_bytes_floor_waits_for_followers_within_their_budget() {
        let mut sizes = AppliedSizes::new(100);
        let one = entry(1, 100).size_bytes();
        sizes.applied(&(1..=10).map(|index| entry(index, 100)).collect::<Vec<_>>());
        assert_eq!(sizes.bytes_floor(2 * one, 6 * one, None), LogIndex(8));
        assert_eq!(
            sizes.bytes_floor(2 * one, 6 * one, Some(LogIndex(10))),
            LogIndex(8),
            "every follower holds everything: the small budget"
        );
        assert_eq!(
            sizes.bytes_floor(2 * one, 6 * one, Some(LogIndex(5))),
            LogIndex(5),
            "a follower at 5 keeps 6.. in the log"
        );
        assert_eq!(
            sizes.bytes_floor(2 * one, 6 * one, Some(LogIndex(1))),
            LogIndex(4),
            "a follower further back than the wider budget is left to a snapshot"
        );
    }
}
