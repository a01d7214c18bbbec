//! The simulated network: a queue of messages ordered by (delivery tick,
//! sequence number), with seeded loss, duplication, delay (hence
//! reordering) and partitions, symmetric or one-way.
//!
//! Invariant: delivery order depends only on the seed and the order of
//! `send` calls, never on hashing or wall-clock time.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};

use rand::Rng;
use rand::rngs::SmallRng;

use crate::core::{Message, NodeId};

/// Fault rates of the network.
#[derive(Clone, Debug, PartialEq)]
pub struct NetworkFaults {
    /// Probability that a message is dropped.
    pub loss: f64,
    /// Probability that a message is delivered twice.
    pub duplicate: f64,
    /// Each message is delayed by 0 to this many ticks (reordering).
    pub delay_ticks_max: u64,
}

impl NetworkFaults {
    /// A network that delivers every message on the next tick, in order.
    pub fn reliable() -> NetworkFaults {
        NetworkFaults {
            loss: 0.0,
            duplicate: 0.0,
            delay_ticks_max: 0,
        }
    }
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Queued {
    deliver_at: u64,
    sequence: u64,
    message: MessageKey,
}

/// Messages are not `Ord`; the heap orders by (tick, sequence) only and
/// keeps the message alongside.
#[derive(Debug)]
struct MessageKey(Message);

impl PartialEq for MessageKey {
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}
impl Eq for MessageKey {}
impl PartialOrd for MessageKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for MessageKey {
    fn cmp(&self, _other: &Self) -> std::cmp::Ordering {
        std::cmp::Ordering::Equal
    }
}

/// The network between the nodes of one simulated cluster.
#[derive(Debug)]
pub struct Network {
    queue: BinaryHeap<Reverse<Queued>>,
    sequence: u64,
    /// Current fault rates.
    pub faults: NetworkFaults,
    /// Directed links that drop everything: (from, to).
    cut: BTreeSet<(NodeId, NodeId)>,
    /// Messages handed to the network, per kind name (for message-count
    /// bounds).
    pub sent: std::collections::BTreeMap<&'static str, u64>,
}

impl Network {
    /// Returns an empty network with the given faults.
    pub fn new(faults: NetworkFaults) -> Network {
        Network {
            queue: BinaryHeap::new(),
            sequence: 0,
            faults,
            cut: BTreeSet::new(),
            sent: Default::default(),
        }
    }

    /// Queues a message sent at tick `now`, applying loss, duplication and
    /// delay.
    pub fn send(&mut self, message: Message, now: u64, rng: &mut SmallRng) {
        *self.sent.entry(message.body.kind_name()).or_default() += 1;
        if self.cut.contains(&(message.from, message.to)) || rng.random_bool(self.faults.loss) {
            return;
        }
        if rng.random_bool(self.faults.duplicate) {
            self.enqueue(message.clone(), now, rng);
        }
        self.enqueue(message, now, rng);
    }

    fn enqueue(&mut self, message: Message, now: u64, rng: &mut SmallRng) {
        let delay = 1 + rng.random_range(0..=self.faults.delay_ticks_max);
        self.sequence += 1;
        self.queue.push(Reverse(Queued {
            deliver_at: now + delay,
            sequence: self.sequence,
            message: MessageKey(message),
        }));
    }

    /// Removes and returns the next message due at or before `now`.
    pub fn next_due(&mut self, now: u64) -> Option<Message> {
        while self
            .queue
            .peek()
            .is_some_and(|Reverse(q)| q.deliver_at <= now)
        {
            let Reverse(queued) = self.queue.pop().expect("peeked");
            // A partition made after sending still drops in-flight messages.
            let message = queued.message.0;
            if !self.cut.contains(&(message.from, message.to)) {
                return Some(message);
            }
        }
        None
    }

    /// Cuts the link from `from` to `to`.
    pub fn cut_link(&mut self, from: NodeId, to: NodeId) {
        self.cut.insert((from, to));
    }

    /// Cuts both directions between every node of `side` and every other
    /// node of `all`.
    pub fn partition(&mut self, side: &BTreeSet<NodeId>, all: &BTreeSet<NodeId>) {
        for &inside in side {
            for &outside in all.difference(side) {
                self.cut.insert((inside, outside));
                self.cut.insert((outside, inside));
            }
        }
    }

    /// Restores every link.
    pub fn heal(&mut self) {
        self.cut.clear();
    }

    /// Returns whether any link is cut.
    pub fn is_partitioned(&self) -> bool {
        !self.cut.is_empty()
    }

    /// Returns the number of messages in flight.
    pub fn in_flight(&self) -> usize {
        self.queue.len()
    }

    /// Returns the total number of messages sent.
    pub fn sent_total(&self) -> u64 {
        self.sent.values().sum()
    }
}
