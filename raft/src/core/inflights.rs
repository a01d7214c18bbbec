//! The window of append messages in flight to one follower (pipelining),
//! bounded in messages and in entry bytes (etcd's `MaxInflightBytes`), so
//! large entries do not put more in flight than the transport's queues
//! hold.
//!
//! Invariant: the recorded last indexes are strictly increasing, there are
//! at most `capacity` of them, and their bytes add up to `bytes`, which
//! passes `bytes_max` only by the last message added.

use std::collections::VecDeque;

use crate::core::types::LogIndex;

/// The last index and entry bytes of each append message sent and not yet
/// acknowledged.
#[derive(Debug, Clone)]
pub struct Inflights {
    /// Invariant: last indexes strictly increasing, at most `capacity`.
    messages: VecDeque<(LogIndex, u64)>,
    /// Invariant: the sum of the bytes in `messages`.
    bytes: u64,
    capacity: usize,
    bytes_max: u64,
}

impl Inflights {
    /// Returns an empty window of `capacity` messages and `bytes_max`
    /// entry bytes.
    pub fn new(capacity: usize, bytes_max: u64) -> Inflights {
        Inflights {
            messages: VecDeque::with_capacity(capacity.min(1024)),
            bytes: 0,
            capacity,
            bytes_max,
        }
    }

    /// Returns whether no more messages may be sent.
    pub fn full(&self) -> bool {
        self.messages.len() >= self.capacity || self.bytes >= self.bytes_max
    }

    /// Records a message whose last entry is `last`, carrying `bytes` of
    /// entries.
    pub fn add(&mut self, last: LogIndex, bytes: u64) {
        assert!(!self.full(), "inflights window overflow");
        if let Some(&(previous, _)) = self.messages.back() {
            assert!(last > previous, "inflight {last} not after {previous}");
        }
        self.messages.push_back((last, bytes));
        self.bytes += bytes;
    }

    /// Frees every message acknowledged by a match at `index`.
    pub fn free_up_to(&mut self, index: LogIndex) {
        while let Some(&(last, bytes)) = self.messages.front() {
            if last > index {
                break;
            }
            self.messages.pop_front();
            self.bytes -= bytes;
        }
    }

    /// Frees the oldest message (presumed lost) so one more may be sent.
    pub fn free_first(&mut self) {
        if let Some((_, bytes)) = self.messages.pop_front() {
            self.bytes -= bytes;
        }
    }

    /// Forgets every message.
    pub fn reset(&mut self) {
        self.messages.clear();
        self.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_fills_by_count_or_by_bytes() {
        let mut by_count = Inflights::new(2, u64::MAX);
        by_count.add(LogIndex(1), 10);
        by_count.add(LogIndex(2), 10);
        assert!(by_count.full());
        by_count.free_up_to(LogIndex(1));
        assert!(!by_count.full());

        let mut by_bytes = Inflights::new(100, 3 << 20);
        by_bytes.add(LogIndex(1), 1 << 20);
        by_bytes.add(LogIndex(2), 1 << 20);
        assert!(!by_bytes.full());
        by_bytes.add(LogIndex(3), 2 << 20);
        assert!(
            by_bytes.full(),
            "the message crossing the budget still went"
        );
        by_bytes.free_first();
        assert!(by_bytes.full(), "3 MiB still in flight");
        by_bytes.free_up_to(LogIndex(2));
        assert!(!by_bytes.full());
        by_bytes.reset();
        assert!(!by_bytes.full());
    }
}
