//! The newest entries of a stored log, kept in memory once written, so
//! the reads that follow soon after (each replica applying what it just
//! stored, a leader sending entries to a follower one step behind) cost a
//! copy of a few handles instead of a RocksDB read and a decode of each
//! entry (TiKV's raftstore keeps such an entry cache too).
//!
//! Invariants (kept by the storage that owns it, which changes it only
//! after the write it mirrors succeeded):
//! - The cached entries have consecutive indexes, and each is the entry
//!   stored at its index.
//! - Their bytes stay within the budget, except for a single entry larger
//!   than the budget, kept alone.
//! - Each cached entry owns its data: an entry received from a leader is
//!   a slice of the buffer its whole message was read into (snapshot
//!   chunks and 1 MiB shard-move entries included), which a cached slice
//!   would keep alive. The copy is the one a read from RocksDB would have
//!   made.

use std::collections::VecDeque;

use bytes::Bytes;

use crate::core::storage::limit_size;
use crate::core::{Entry, LogIndex};

/// The memory a cached entry takes: its data and the entry itself.
fn cached_bytes(entry: &Entry) -> u64 {
    entry.data.len() as u64 + std::mem::size_of::<Entry>() as u64
}

/// The newest entries of the log, within a byte budget.
#[derive(Debug)]
pub(super) struct EntryCache {
    entries: VecDeque<Entry>,
    bytes: u64,
    bytes_max: u64,
}

impl EntryCache {
    /// Returns an empty cache that keeps up to `bytes_max` bytes of
    /// entries.
    pub(super) fn new(bytes_max: u64) -> EntryCache {
        EntryCache {
            entries: VecDeque::new(),
            bytes: 0,
            bytes_max,
        }
    }

    /// Returns the entries `[low, high)` if all are cached, as
    /// [`Storage::entries`](crate::core::storage::Storage::entries) reads
    /// them: as many as fit in `bytes_max`, at least one.
    pub(super) fn get(&self, low: LogIndex, high: LogIndex, bytes_max: u64) -> Option<Vec<Entry>> {
        let first = self.entries.front()?.index;
        let last = self.entries.back()?.index;
        if low < first || high.prev() > last || low >= high {
            return None;
        }
        let skip = usize::try_from(low.0 - first.0).ok()?;
        let wanted = usize::try_from(high.0 - low.0).ok()?;
        Some(limit_size(
            self.entries.range(skip..skip + wanted),
            bytes_max,
        ))
    }

    /// Records entries just written after the log's entries before the
    /// first of them (the cached ones at and after it are replaced); drops
    /// the oldest past the budget. The cache must hold nothing past the
    /// stored entry before them ([`EntryCache::retain_within`] first).
    pub(super) fn append(&mut self, appended: &[Entry]) {
        let Some(first) = appended.first() else {
            return;
        };
        while self
            .entries
            .back()
            .is_some_and(|last| last.index >= first.index)
        {
            self.pop_back();
        }
        debug_assert!(
            self.entries
                .back()
                .is_none_or(|last| last.index.next() == first.index),
            "appended entries continue the cached ones"
        );
        for entry in appended {
            let owned = Entry {
                term: entry.term,
                index: entry.index,
                kind: entry.kind,
                data: Bytes::copy_from_slice(&entry.data),
            };
            self.bytes += cached_bytes(&owned);
            self.entries.push_back(owned);
        }
        while self.bytes > self.bytes_max && self.entries.len() > 1 {
            self.pop_front();
        }
    }

    /// Keeps only the entries in `(prefix, last]`, the stored log after a
    /// compaction or an installed snapshot.
    pub(super) fn retain_within(&mut self, prefix: LogIndex, last: LogIndex) {
        while self
            .entries
            .front()
            .is_some_and(|entry| entry.index <= prefix)
        {
            self.pop_front();
        }
        while self.entries.back().is_some_and(|entry| entry.index > last) {
            self.pop_back();
        }
    }

    fn pop_front(&mut self) {
        if let Some(entry) = self.entries.pop_front() {
            self.bytes -= cached_bytes(&entry);
        }
    }

    fn pop_back(&mut self) {
        if let Some(entry) = self.entries.pop_back() {
            self.bytes -= cached_bytes(&entry);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{EntryKind, Term};

    fn entry(index: u64, term: u64) -> Entry {
        Entry {
            term: Term(term),
            index: LogIndex(index),
            kind: EntryKind::Normal,
            data: Bytes::from(vec![0; 100]),
        }
    }

    fn indexes(found: Option<Vec<Entry>>) -> Option<Vec<u64>> {
        found.map(|entries| entries.iter().map(|entry| entry.index.0).collect())
    }

    #[test]
    fn serves_only_ranges_it_holds_whole() {
        let mut cache = EntryCache::new(u64::MAX);
        cache.append(&(3..=6).map(|i| entry(i, 1)).collect::<Vec<_>>());
        assert_eq!(
            indexes(cache.get(LogIndex(4), LogIndex(7), u64::MAX)),
            Some(vec![4, 5, 6])
        );
        assert_eq!(cache.get(LogIndex(2), LogIndex(5), u64::MAX), None);
        assert_eq!(cache.get(LogIndex(5), LogIndex(8), u64::MAX), None);
        let one = entry(1, 1).size_bytes();
        assert_eq!(
            indexes(cache.get(LogIndex(3), LogIndex(7), one * 2)),
            Some(vec![3, 4])
        );
        assert_eq!(
            indexes(cache.get(LogIndex(3), LogIndex(7), 0)),
            Some(vec![3])
        );
    }

    #[test]
    fn an_append_over_a_suffix_replaces_it() {
        let mut cache = EntryCache::new(u64::MAX);
        cache.append(&(1..=5).map(|i| entry(i, 1)).collect::<Vec<_>>());
        cache.append(&[entry(4, 2)]);
        assert_eq!(
            indexes(cache.get(LogIndex(1), LogIndex(5), u64::MAX)),
            Some(vec![1, 2, 3, 4])
        );
        assert_eq!(
            cache.get(LogIndex(4), LogIndex(5), u64::MAX).unwrap()[0].term,
            Term(2)
        );
        assert_eq!(cache.get(LogIndex(5), LogIndex(6), u64::MAX), None);
    }

    #[test]
    fn a_cached_entry_does_not_hold_the_buffer_it_came_from() {
        let message = Bytes::from(vec![7; 1 << 20]);
        let received = Entry {
            data: message.slice(..100),
            ..entry(1, 1)
        };
        let mut cache = EntryCache::new(u64::MAX);
        cache.append(std::slice::from_ref(&received));
        let cached = cache.get(LogIndex(1), LogIndex(2), u64::MAX).unwrap();
        assert_eq!(cached, vec![received.clone()]);
        assert_ne!(cached[0].data.as_ptr(), received.data.as_ptr());
        assert_eq!(cache.bytes, cached_bytes(&received));
    }

    #[test]
    fn the_oldest_entries_leave_past_the_budget() {
        let one = cached_bytes(&entry(1, 1));
        let mut cache = EntryCache::new(one * 3);
        cache.append(&(1..=5).map(|i| entry(i, 1)).collect::<Vec<_>>());
        assert_eq!(cache.get(LogIndex(2), LogIndex(3), u64::MAX), None);
        assert_eq!(
            indexes(cache.get(LogIndex(3), LogIndex(6), u64::MAX)),
            Some(vec![3, 4, 5])
        );
        cache.retain_within(LogIndex(3), LogIndex(4));
        assert_eq!(
            indexes(cache.get(LogIndex(4), LogIndex(5), u64::MAX)),
            Some(vec![4])
        );
        assert_eq!(cache.get(LogIndex(5), LogIndex(6), u64::MAX), None);
        assert_eq!(cache.bytes, one);
    }
}
