//! The bounded queue of messages waiting for one peer's stream.
//!
//! Invariants:
//! - The queue never holds more than its capacity in messages, nor more
//!   than its byte budget (approximate wire sizes) unless it holds a
//!   single message; [`PeerQueue::push`] drops what does not fit and never
//!   waits. Small messages (heartbeats, votes) still fit behind a large
//!   append that did not.
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

/// The messages queued and their total approximate wire size.
#[derive(Debug, Default)]
struct Queued {
    messages: VecDeque<Message>,
    /// Invariant: the sum of `wire_size_bytes` over `messages`.
    bytes: u64,
}

/// The messages queued for one peer, shared by the sender (the node's loop)
/// and the peer's stream task.
#[derive(Debug)]
pub(crate) struct PeerQueue {
    /// Invariant: at most `capacity` messages and, with more than one
    /// message, at most `bytes_max` bytes.
    queued: Mutex<Queued>,
    /// Signalled after each push that queued something.
    ready: Notify,
    capacity: usize,
    bytes_max: u64,
}

impl PeerQueue {
    /// Returns an empty queue holding at most `capacity` messages and
    /// `bytes_max` bytes of them.
    pub(crate) fn new(capacity: usize, bytes_max: u64) -> PeerQueue {
        PeerQueue {
            queued: Mutex::new(Queued::default()),
            ready: Notify::new(),
            capacity,
            bytes_max,
        }
    }

    /// Appends the messages that fit and returns how many were dropped.
    pub(crate) fn push(&self, messages: Vec<Message>) -> usize {
        let total = messages.len();
        let mut queue = self.lock();
        let mut kept = 0;
        for message in messages {
            let size = wire_size_bytes(&message);
            let fits = queue.messages.len() < self.capacity
                && (queue.messages.is_empty() || queue.bytes + size <= self.bytes_max);
            if fits {
                queue.bytes += size;
                queue.messages.push_back(message);
                kept += 1;
            }
        }
        drop(queue);
        if kept > 0 {
            self.ready.notify_one();
        }
        total - kept
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
        let count = queue.messages.len();
        *queue = Queued::default();
        count
    }

    fn take(&self, bytes_max: u64) -> Vec<Message> {
        let mut queue = self.lock();
        let mut batch = Vec::new();
        let mut bytes = 0;
        while let Some(message) = queue.messages.front() {
            let size = wire_size_bytes(message);
            if !batch.is_empty() && bytes + size > bytes_max {
                break;
            }
            bytes += size;
            queue.bytes -= size;
            batch.extend(queue.messages.pop_front());
        }
        batch
    }

    /// Locks the queue. No code between a change of `messages` and the
    /// matching change of `bytes` can panic, so a poisoned lock still
    /// guards a consistent queue and is used as is.
    fn lock(&self) -> MutexGuard<'_, Queued> {
        self.queued.lock().unwrap_or_else(PoisonError::into_inner)
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
        let queue = PeerQueue::new(3, u64::MAX);
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
        let queue = PeerQueue::new(10, u64::MAX);
        queue.push(vec![append(1000), append(1000), heartbeat(1)]);
        assert_eq!(queue.take(10).len(), 1, "an oversized message still leaves");
        assert_eq!(
            queue.take(1100).len(),
            2,
            "the append and the heartbeat fit"
        );
        assert!(queue.take(u64::MAX).is_empty());
    }

    #[test]
    fn push_beyond_the_byte_budget_drops_large_messages_but_not_small_ones() {
        let queue = PeerQueue::new(10, 2500);
        assert_eq!(queue.push(vec![append(1000), append(1000)]), 0);
        assert_eq!(
            queue.push(vec![append(1000), heartbeat(1)]),
            1,
            "the third append does not fit, the heartbeat does"
        );
        assert_eq!(queue.take(u64::MAX).len(), 3);
        assert_eq!(
            queue.push(vec![append(1000), append(1000)]),
            0,
            "room again"
        );
        assert_eq!(queue.clear(), 2);
        assert_eq!(
            queue.push(vec![append(4000)]),
            0,
            "alone, a large message fits"
        );
        assert_eq!(queue.push(vec![heartbeat(2)]), 1, "and fills the budget");
    }

    #[tokio::test]
    async fn next_batch_wakes_on_push() {
        let queue = std::sync::Arc::new(PeerQueue::new(10, u64::MAX));
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
