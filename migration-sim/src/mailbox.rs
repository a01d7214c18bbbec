//! The calls between groups and to the controller, as simulated messages:
//! a shard's chunk fetched from its holder, the holder asked to delete it,
//! a configuration asked of the controller, and their replies. Each can be
//! lost, duplicated and delayed (so reordered), and links between groups
//! can be cut, like Raft traffic.
//!
//! Invariants:
//! - A message is delivered at most once per copy, never before its due
//!   tick, and never across a cut link.
//! - Everything is drawn from the world's seeded generator, in send order.

use std::collections::{BTreeMap, BTreeSet};

use proto::config::{Config, ConfigNum, GroupId, ShardId};
use raft::core::NodeId;
use rand::Rng;
use rand::rngs::SmallRng;
use shardkv::machine::ShardChunk;

/// Where a call goes or comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Endpoint {
    /// A controller replica.
    Ctrler(NodeId),
    /// A replica of a group.
    Group(GroupId, NodeId),
    /// A key/value client, by slot.
    Client(usize),
}

impl Endpoint {
    /// Returns the side of a link cut this endpoint is on: its group, the
    /// controller as gid 0; clients are never cut off.
    fn side(self) -> Option<GroupId> {
        match self {
            Endpoint::Ctrler(_) => Some(GroupId(0)),
            Endpoint::Group(gid, _) => Some(gid),
            Endpoint::Client(_) => None,
        }
    }
}

/// What a message carries.
#[derive(Clone, Debug, PartialEq)]
pub enum Payload {
    /// The new owner `to` asks for the chunk of `shard` at `cursor` (move
    /// `num`).
    Fetch {
        /// The asker's call id.
        call: u64,
        /// The asking group.
        to: GroupId,
        /// The shard.
        shard: ShardId,
        /// The move's configuration.
        num: ConfigNum,
        /// Where the chunk starts.
        cursor: bytes::Bytes,
        /// Bytes of records at most.
        bytes_max: u64,
    },
    /// The holder's answer: the chunk, `None` if it cannot send it yet.
    Fetched {
        /// The call answered.
        call: u64,
        /// What the holder answered.
        answer: Answer<Option<ShardChunk>>,
    },
    /// The new owner `to` asks the holder to delete `shard` (move `num`).
    Delete {
        /// The asker's call id.
        call: u64,
        /// The asking group.
        to: GroupId,
        /// The shard.
        shard: ShardId,
        /// The move's configuration.
        num: ConfigNum,
    },
    /// The holder's answer: whether its copy is gone.
    Deleted {
        /// The call answered.
        call: u64,
        /// What the holder answered.
        answer: Answer<bool>,
    },
    /// Configuration `num` (-1: the latest) asked of the controller.
    Query {
        /// The asker's call id.
        call: u64,
        /// The configuration asked for.
        num: i64,
    },
    /// The controller's answer.
    Queried {
        /// The call answered.
        call: u64,
        /// The configuration (the latest if `num` is past it).
        config: Config,
    },
}

/// A server's answer to a call: the leader's, or a redirect.
#[derive(Clone, Debug, PartialEq)]
pub enum Answer<T> {
    /// The replica is not its group's leader; the leader it knows of.
    NotLeader(Option<raft::core::NodeId>),
    /// The leader's answer.
    Ok(T),
}

/// One message on its way.
#[derive(Clone, Debug)]
pub struct Envelope {
    /// The sender.
    pub from: Endpoint,
    /// The receiver.
    pub to: Endpoint,
    /// The content.
    pub payload: Payload,
}

/// The faults of calls between groups.
#[derive(Clone, Debug, Default)]
pub struct CallFaults {
    /// Probability that a message is lost.
    pub loss: f64,
    /// Probability that a message is delivered twice.
    pub duplicate: f64,
    /// A message arrives 0 to this many ticks late.
    pub delay_ticks_max: u64,
}

/// The messages in flight, by due tick.
#[derive(Debug, Default)]
pub struct Mailbox {
    /// The faults applied to each message sent.
    pub faults: CallFaults,
    in_flight: BTreeMap<(u64, u64), Envelope>,
    next_id: u64,
    cut: BTreeSet<(GroupId, GroupId)>,
    sent: u64,
}

impl Mailbox {
    /// Returns an empty mailbox with `faults`.
    pub fn new(faults: CallFaults) -> Mailbox {
        Mailbox {
            faults,
            ..Mailbox::default()
        }
    }

    /// Sends `envelope` at tick `now`.
    pub fn send(&mut self, envelope: Envelope, now: u64, rng: &mut SmallRng) {
        self.sent += 1;
        if rng.random_bool(self.faults.loss) {
            return;
        }
        let copies = 1 + u64::from(rng.random_bool(self.faults.duplicate));
        for _ in 0..copies {
            let due = now + 1 + rng.random_range(0..=self.faults.delay_ticks_max);
            self.next_id += 1;
            self.in_flight.insert((due, self.next_id), envelope.clone());
        }
    }

    /// Takes the messages due at `now` whose link is not cut, in order
    /// (those across a cut link are lost).
    pub fn due(&mut self, now: u64) -> Vec<Envelope> {
        let later = self.in_flight.split_off(&(now + 1, 0));
        let due = std::mem::replace(&mut self.in_flight, later);
        due.into_values()
            .filter(|envelope| !self.is_cut(envelope.from, envelope.to))
            .collect()
    }

    /// Cuts the links between groups `a` and `b` (gid 0: the controller).
    pub fn cut(&mut self, a: GroupId, b: GroupId) {
        if a != b {
            self.cut.insert((a.min(b), a.max(b)));
        }
    }

    /// Restores every link.
    pub fn heal(&mut self) {
        self.cut.clear();
    }

    /// Returns whether a link is cut.
    pub fn any_cut(&self) -> bool {
        !self.cut.is_empty()
    }

    /// Returns the messages sent so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    fn is_cut(&self, from: Endpoint, to: Endpoint) -> bool {
        match (from.side(), to.side()) {
            (Some(a), Some(b)) => self.cut.contains(&(a.min(b), a.max(b))),
            _ => false,
        }
    }
}
