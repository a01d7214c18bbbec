//! A leader's snapshot reads (issue 15 §2, "snapshots on demand"): the
//! views of its application's state it pinned for followers, and the
//! [`SnapshotRequest`]s its core asked for, queued until the tick their
//! answer is due, so answers come late (never between `ready` and
//! `advance`). The cluster serves them; the faults (delays, failed reads,
//! stale views) are drawn there from the profile.
//!
//! Invariants:
//! - Requests are served in the order they were made (due ticks never
//!   decrease along the queue), so a `Release` never overtakes a read
//!   asked before it.
//! - At most one view is pinned per follower; pinning replaces it.
//! - Both live in the process's memory: a crash or a step-down drops them.

use std::collections::{BTreeMap, VecDeque};

use crate::core::{NodeId, SnapshotMeta, SnapshotRequest};

/// A pinned, immutable copy of the application's state at `meta.index`.
#[derive(Clone, Debug)]
pub struct PinnedView<M> {
    /// The snapshot the view is: index, term and membership.
    pub meta: SnapshotMeta,
    /// The state at `meta.index`.
    pub state: M,
}

/// The pinned views and pending requests of one node.
#[derive(Clone, Debug)]
pub struct SnapshotReads<M> {
    views: BTreeMap<NodeId, PinnedView<M>>,
    /// Invariant: due ticks are non-decreasing.
    queue: VecDeque<(u64, SnapshotRequest)>,
}

impl<M> Default for SnapshotReads<M> {
    fn default() -> SnapshotReads<M> {
        SnapshotReads {
            views: BTreeMap::new(),
            queue: VecDeque::new(),
        }
    }
}

impl<M> SnapshotReads<M> {
    /// Queues `request`, to be served at tick `due` or later (after every
    /// request queued before it).
    pub fn enqueue(&mut self, due: u64, request: SnapshotRequest) {
        let due = self.queue.back().map_or(due, |&(last, _)| last.max(due));
        self.queue.push_back((due, request));
    }

    /// Removes and returns the oldest request if it is due at `now`.
    pub fn pop_due(&mut self, now: u64) -> Option<SnapshotRequest> {
        if self.queue.front().is_some_and(|&(due, _)| due <= now) {
            return self.queue.pop_front().map(|(_, request)| request);
        }
        None
    }

    /// Returns the view pinned for `to`.
    pub fn view(&self, to: NodeId) -> Option<&PinnedView<M>> {
        self.views.get(&to)
    }

    /// Pins `view` for `to`, replacing any earlier one.
    pub fn pin(&mut self, to: NodeId, view: PinnedView<M>) {
        self.views.insert(to, view);
    }

    /// Drops the view pinned for `to`.
    pub fn release(&mut self, to: NodeId) {
        self.views.remove(&to);
    }

    /// Drops every view and request (crash or step-down).
    pub fn clear(&mut self) {
        self.views.clear();
        self.queue.clear();
    }

    /// Returns the number of pinned views.
    pub fn pinned(&self) -> usize {
        self.views.len()
    }
}
