//! The simulated network: a queue of messages ordered by (delivery tick,
//! sequence number), with seeded loss, duplication, delay (hence
//! reordering), corruption, broken snapshot streams and partitions,
//! symmetric or one-way.
//!
//! Corruption is modelled as the real transport meets it: a snapshot chunk
//! carries a crc32 of its bytes that the core checks on receipt, so a
//! corrupted chunk is delivered with one byte flipped and the core must
//! refuse it; every other message is a protocol buffer on a checksummed
//! stream with no crc of its own, so a corrupted one is detected below the
//! core and dropped. Both are counted ([`Network::corrupted`]).
//!
//! A broken snapshot stream is a transfer cut mid-way: the chunk and every
//! chunk on that link for a few ticks after are lost, as when a streaming
//! call fails and is opened again.
//!
//! Invariant: delivery order depends only on the seed and the order of
//! `send` calls, never on hashing or wall-clock time. A fault whose rate is
//! zero draws nothing from the seed's randomness.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

use rand::Rng;
use rand::rngs::SmallRng;

use crate::core::{Message, MessageBody, NodeId};

/// Fault rates of the network.
#[derive(Clone, Debug, PartialEq)]
pub struct NetworkFaults {
    /// Probability that a message is dropped.
    pub loss: f64,
    /// Probability that a message is delivered twice.
    pub duplicate: f64,
    /// Each message is delayed by 0 to this many ticks (reordering).
    pub delay_ticks_max: u64,
    /// Probability that a message is corrupted in flight.
    pub corrupt: f64,
    /// Probability that a snapshot chunk breaks its stream: it and the
    /// chunks on its link for up to [`SNAPSHOT_BREAK_TICKS_MAX`] ticks are
    /// lost.
    pub snapshot_break: f64,
}

/// The longest a broken snapshot stream stays broken, in ticks.
pub const SNAPSHOT_BREAK_TICKS_MAX: u64 = 30;

/// Messages the network damaged, by what became of them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Corrupted {
    /// Snapshot chunks delivered with a flipped byte, for the core's crc32
    /// check to refuse.
    pub chunks_delivered: u64,
    /// Other messages, detected by the transport and dropped.
    pub dropped: u64,
    /// Snapshot chunks lost to broken streams.
    pub chunks_broken: u64,
}

impl std::ops::AddAssign for Corrupted {
    fn add_assign(&mut self, other: Corrupted) {
        self.chunks_delivered += other.chunks_delivered;
        self.dropped += other.dropped;
        self.chunks_broken += other.chunks_broken;
    }
}

impl NetworkFaults {
    /// A network that delivers every message on the next tick, in order.
    pub fn reliable() -> NetworkFaults {
        NetworkFaults {
            loss: 0.0,
            duplicate: 0.0,
            delay_ticks_max: 0,
            corrupt: 0.0,
            snapshot_break: 0.0,
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
    pub sent: BTreeMap<&'static str, u64>,
    /// Messages damaged in flight.
    pub corrupted: Corrupted,
    /// Links whose snapshot stream is broken, until the given tick.
    broken_streams: BTreeMap<(NodeId, NodeId), u64>,
}

impl Network {
    /// Returns an empty network with the given faults.
    pub fn new(faults: NetworkFaults) -> Network {
        Network {
            queue: BinaryHeap::new(),
            sequence: 0,
            faults,
            cut: BTreeSet::new(),
            sent: BTreeMap::new(),
            corrupted: Corrupted::default(),
            broken_streams: BTreeMap::new(),
        }
    }

    /// Queues a message sent at tick `now`, applying loss, broken snapshot
    /// streams, duplication, corruption and delay.
    pub fn send(&mut self, message: Message, now: u64, rng: &mut SmallRng) {
        *self.sent.entry(message.body.kind_name()).or_default() += 1;
        if self.cut.contains(&(message.from, message.to)) || rng.random_bool(self.faults.loss) {
            return;
        }
        if self.breaks_stream(&message, now, rng) {
            return;
        }
        if rng.random_bool(self.faults.duplicate) {
            let copy = message.clone();
            self.corrupt_and_enqueue(copy, now, rng);
        }
        self.corrupt_and_enqueue(message, now, rng);
    }

    /// Returns whether `message` is a snapshot chunk lost to a broken
    /// stream (breaking it now, at the profile's rate).
    fn breaks_stream(&mut self, message: &Message, now: u64, rng: &mut SmallRng) -> bool {
        if !matches!(message.body, MessageBody::SnapshotChunk { .. }) {
            return false;
        }
        let link = (message.from, message.to);
        let broken = self
            .broken_streams
            .get(&link)
            .is_some_and(|&until| now < until);
        let breaks = !broken
            && self.faults.snapshot_break > 0.0
            && rng.random_bool(self.faults.snapshot_break);
        if breaks {
            let until = now + rng.random_range(1..=SNAPSHOT_BREAK_TICKS_MAX);
            self.broken_streams.insert(link, until);
        }
        if broken || breaks {
            self.corrupted.chunks_broken += 1;
            return true;
        }
        false
    }

    /// Corrupts `message` at the profile's rate (see the module doc), then
    /// queues it unless the transport would have dropped it.
    fn corrupt_and_enqueue(&mut self, mut message: Message, now: u64, rng: &mut SmallRng) {
        if self.faults.corrupt > 0.0 && rng.random_bool(self.faults.corrupt) {
            let MessageBody::SnapshotChunk { data, crc32, .. } = &mut message.body else {
                self.corrupted.dropped += 1;
                return;
            };
            if data.is_empty() {
                *crc32 ^= 1 << rng.random_range(0..32);
            } else {
                let mut bytes = data.to_vec();
                let at = rng.random_range(0..bytes.len());
                bytes[at] ^= 1 << rng.random_range(0..8);
                *data = bytes::Bytes::from(bytes);
            }
            self.corrupted.chunks_delivered += 1;
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
