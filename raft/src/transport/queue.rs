//! The bounded queue of messages waiting for one peer's stream.
//!
//! Invariants:
//! - The queue never holds more than its capacity; [`PeerQueue::push`]
//!   drops what does not fit and never waits.
//! - Messages leave in the order they arrived.
//! - A batch taken by [`PeerQueue::next_batch`] holds at least one message
//!   and, beyond the first, stays within the byte budget, so one batch
//!   never grows past the gRPC message limit because of queued backlog.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;

use crate::core::{Message, MessageBody};

/// Approximate bytes of a message's fields other than payloads.
const MESSAGE_OVERHEAD_BYTES: u64 = 32;

/// The messages queued for one peer, shared by the sender (the node's loop)
/// and the peer's stream task.
#[derive(Debug)]
pub(crate) struct PeerQueue {
    /// Invariant: `messages.len() <= capacity`.
    messages: Mutex<VecDeque<Message>>,
    /// Signalled after each push that queued something.
    ready: Notify,
    capacity: usize,
}

impl PeerQueue {
    /// Returns an empty queue holding at most `capacity` messages.
    pub(crate) fn new(capacity: usize) -> PeerQueue {
        PeerQueue {
            messages: Mutex::new(VecDeque::new()),
            ready: Notify::new(),
            capacity,
        }
    }

    /// Appends the messages that fit and returns how many were dropped.
    pub(crate) fn push(&self, messages: Vec<Message>) -> usize {
        let total = messages.len();
        let mut queue = self.lock();
        let room = self.capacity.saturating_sub(queue.len());
        queue.extend(messages.into_iter().take(room));
        drop(queue);
        if room > 0 && total > 0 {
            self.ready.notify_one();
        }
        total.saturating_sub(room)
    }

    /// Waits until a message is queued, then removes and returns the oldest
    /// messages: at least one, and more while their approximate wire size
    /// stays within `bytes_max`.
    ///
    /// Cancel safe: messages are removed only when the batch is returned.
    pub(crate) async fn next_batch(&self, bytes_max: u64) -> Vec<Message> {
        loop {
            let batch = self.take(bytes_max);
            if !batch.is_empty() {
                return batch;
            }
            // A push between `take` and here leaves a permit in `ready`, so
            // no wake-up is lost.
            self.ready.notified().await;
        }
    }

    /// Empties the queue and returns how many messages it held.
    pub(crate) fn clear(&self) -> usize {
        let mut queue = self.lock();
        let count = queue.len();
        queue.clear();
        count
    }

    fn take(&self, bytes_max: u64) -> Vec<Message> {
        let mut queue = self.lock();
        let mut batch = Vec::new();
        let mut bytes = 0;
        while let Some(message) = queue.front() {
            bytes += wire_size_bytes(message);
            if !batch.is_empty() && bytes > bytes_max {
                break;
            }
            batch.extend(queue.pop_front());
        }
        batch
    }

    /// Locks the queue. A panic while holding the lock cannot leave the
    /// deque inconsistent (every update is one `VecDeque` call), so a
    /// poisoned lock is used as is.
    fn lock(&self) -> MutexGuard<'_, VecDeque<Message>> {
        self.messages.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Returns the approximate size of a message on the wire, in bytes.
pub(crate) fn wire_size_bytes(message: &Message) -> u64 {
    let payload = match &message.body {
        MessageBody::AppendEntries { entries, .. } => {
            entries.iter().map(|entry| entry.size_bytes()).sum()
        }
        MessageBody::SnapshotChunk { meta, data, .. } => {
            let members = meta.membership.members().count() as u64;
            data.len() as u64 + 10 * members
        }
        _ => 0,
    };
    MESSAGE_OVERHEAD_BYTES + payload
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::core::{Entry, EntryKind, LogIndex, NodeId, Term};

    fn heartbeat(read_round: u64) -> Message {
        Message {
            from: NodeId(1),
            to: NodeId(2),
            term: Term(1),
            body: MessageBody::Heartbeat {
                commit: LogIndex(0),
                read_round,
            },
        }
    }

    fn append(data_bytes: usize) -> Message {
        let entry = Entry {
            term: Term(1),
            index: LogIndex(1),
            kind: EntryKind::Normal,
            data: Bytes::from(vec![0; data_bytes]),
        };
        Message {
            body: MessageBody::AppendEntries {
                prev_index: LogIndex(0),
                prev_term: Term(0),
                entries: vec![entry],
                commit: LogIndex(0),
            },
            ..heartbeat(0)
        }
    }

    #[test]
    fn push_beyond_capacity_drops_the_newest() {
        let queue = PeerQueue::new(3);
        assert_eq!(queue.push((1..=2).map(heartbeat).collect()), 0);
        assert_eq!(queue.push((3..=5).map(heartbeat).collect()), 2);
        assert_eq!(queue.push(vec![heartbeat(6)]), 1);
        let batch = queue.take(u64::MAX);
        let rounds: Vec<Message> = (1..=3).map(heartbeat).collect();
        assert_eq!(batch, rounds);
        assert_eq!(queue.clear(), 0);
    }

    #[test]
    fn batches_respect_the_byte_budget_but_take_at_least_one() {
        let queue = PeerQueue::new(10);
        queue.push(vec![append(1000), append(1000), heartbeat(1)]);
        assert_eq!(queue.take(10).len(), 1, "an oversized message still leaves");
        assert_eq!(
            queue.take(1100).len(),
            2,
            "the append and the heartbeat fit"
        );
        assert!(queue.take(u64::MAX).is_empty());
    }

    #[tokio::test]
    async fn next_batch_wakes_on_push() {
        let queue = std::sync::Arc::new(PeerQueue::new(10));
        let waiter = tokio::spawn({
            let queue = queue.clone();
            async move { queue.next_batch(u64::MAX).await }
        });
        tokio::task::yield_now().await;
        queue.push(vec![heartbeat(1), heartbeat(2)]);
        let batch = tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("the waiter wakes before the deadline")
            .expect("the waiter does not panic");
        assert_eq!(batch, vec![heartbeat(1), heartbeat(2)]);
    }
}
