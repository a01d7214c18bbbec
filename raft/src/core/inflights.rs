//! The window of append messages in flight to one follower (pipelining).
//!
//! Invariant: the recorded last indexes are strictly increasing and there
//! are at most `capacity` of them.

use std::collections::VecDeque;

use crate::core::types::LogIndex;

/// The last index of each append message sent and not yet acknowledged.
#[derive(Debug, Clone)]
pub struct Inflights {
    /// Invariant: strictly increasing, at most `capacity` long.
    last_indexes: VecDeque<LogIndex>,
    capacity: usize,
}

impl Inflights {
    /// Returns an empty window of `capacity` messages.
    pub fn new(capacity: usize) -> Inflights {
        Inflights {
            last_indexes: VecDeque::with_capacity(capacity.min(1024)),
            capacity,
        }
    }

    /// Returns whether no more messages may be sent.
    pub fn full(&self) -> bool {
        self.last_indexes.len() >= self.capacity
    }

    /// Records a message whose last entry is `last`.
    pub fn add(&mut self, last: LogIndex) {
        assert!(!self.full(), "inflights window overflow");
        if let Some(&previous) = self.last_indexes.back() {
            assert!(last > previous, "inflight {last} not after {previous}");
        }
        self.last_indexes.push_back(last);
    }

    /// Frees every message acknowledged by a match at `index`.
    pub fn free_up_to(&mut self, index: LogIndex) {
        while self.last_indexes.front().is_some_and(|&last| last <= index) {
            self.last_indexes.pop_front();
        }
    }

    /// Frees the oldest message (presumed lost) so one more may be sent.
    pub fn free_first(&mut self) {
        self.last_indexes.pop_front();
    }

    /// Forgets every message.
    pub fn reset(&mut self) {
        self.last_indexes.clear();
    }
}
