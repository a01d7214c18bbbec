//! The vocabulary of the Raft core: identifiers, log entries, hard state,
//! membership and snapshot metadata.
//!
//! Invariants kept by these types:
//! - `Term`, `LogIndex` and `NodeId` are distinct newtypes, so an index can
//!   never be passed where a term is expected.
//! - Index 0 and term 0 mean "before the first entry"; real entries start at
//!   index 1 and term 1.
//! - A [`Membership`] never lists a node as both voter and learner.

use std::collections::BTreeSet;
use std::fmt;

use bytes::Bytes;

macro_rules! newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub u64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

newtype!(
    /// A Raft term: a logical clock that grows by one per election (§5.1).
    Term
);
newtype!(
    /// The position of an entry in the replicated log, from 1.
    LogIndex
);
newtype!(
    /// The identity of a replica within its group; never 0.
    NodeId
);

impl LogIndex {
    /// Returns the following index.
    pub fn next(self) -> LogIndex {
        LogIndex(self.0 + 1)
    }

    /// Returns the preceding index, saturating at 0.
    pub fn prev(self) -> LogIndex {
        LogIndex(self.0.saturating_sub(1))
    }
}

/// What an entry carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// Application data (an empty one is appended by each new leader).
    Normal,
    /// An encoded [`ConfChange`].
    ConfChange,
}

/// One entry of the replicated log.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Entry {
    /// The term of the leader that created the entry.
    pub term: Term,
    /// The entry's position in the log.
    pub index: LogIndex,
    /// Whether `data` is application data or a membership change.
    pub kind: EntryKind,
    /// The payload, opaque to the core for `Normal` entries.
    pub data: Bytes,
}

impl Entry {
    /// Returns the approximate size of the entry on the wire, in bytes, used
    /// to bound message sizes.
    pub fn size_bytes(&self) -> u64 {
        self.data.len() as u64 + 24
    }
}

/// The state that must be durable before a node answers a vote or
/// acknowledges an append (§5.1 Figure 2 "persistent state").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HardState {
    /// The latest term the node has seen.
    pub term: Term,
    /// The candidate voted for in `term`, if any.
    pub vote: Option<NodeId>,
    /// The highest index known committed (durable as a hint only).
    pub commit: LogIndex,
}

/// The voters and learners of a group.
///
/// Invariant: `voters` and `learners` are disjoint.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Membership {
    /// Nodes whose acknowledgements count towards quorums and who may lead.
    pub voters: BTreeSet<NodeId>,
    /// Nodes that receive the log but neither vote nor count for commit.
    pub learners: BTreeSet<NodeId>,
}

impl Membership {
    /// Returns a membership of the given voters and no learners.
    pub fn with_voters(voters: impl IntoIterator<Item = NodeId>) -> Membership {
        Membership {
            voters: voters.into_iter().collect(),
            learners: BTreeSet::new(),
        }
    }

    /// Returns whether `node` is a voter or a learner.
    pub fn contains(&self, node: NodeId) -> bool {
        self.voters.contains(&node) || self.learners.contains(&node)
    }

    /// Returns every member, voters then learners, each in id order.
    pub fn members(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.voters.iter().chain(self.learners.iter()).copied()
    }

    /// Returns the number of voters that forms a majority.
    pub fn quorum(&self) -> usize {
        self.voters.len() / 2 + 1
    }
}

/// A single-server membership change (Raft dissertation §4.1, with learners
/// as in etcd). Changes take effect when their entry is applied, and the
/// leader proposes at most one at a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConfChange {
    /// Adds a node that receives the log but does not vote.
    AddLearner(NodeId),
    /// Turns a learner into a voter.
    PromoteLearner(NodeId),
    /// Removes a voter or learner.
    RemoveNode(NodeId),
}

impl ConfChange {
    /// Returns the entry payload encoding this change (kind byte, then the
    /// node id big-endian).
    pub fn encode(&self) -> Bytes {
        let (kind, node) = match *self {
            ConfChange::AddLearner(node) => (0u8, node),
            ConfChange::PromoteLearner(node) => (1, node),
            ConfChange::RemoveNode(node) => (2, node),
        };
        let mut buffer = Vec::with_capacity(9);
        buffer.push(kind);
        buffer.extend_from_slice(&node.0.to_be_bytes());
        Bytes::from(buffer)
    }

    /// Decodes a payload written by [`ConfChange::encode`]; `None` if it is
    /// malformed.
    pub fn decode(data: &[u8]) -> Option<ConfChange> {
        let (&kind, rest) = data.split_first()?;
        let node = NodeId(u64::from_be_bytes(rest.try_into().ok()?));
        match kind {
            0 => Some(ConfChange::AddLearner(node)),
            1 => Some(ConfChange::PromoteLearner(node)),
            2 => Some(ConfChange::RemoveNode(node)),
            _ => None,
        }
    }
}

/// Describes a snapshot: the log prefix it replaces and the membership in
/// force at its last entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct SnapshotMeta {
    /// The index of the last entry the snapshot covers.
    pub index: LogIndex,
    /// The term of that entry.
    pub term: Term,
    /// The membership as of `index`.
    pub membership: Membership,
}

/// One piece of a snapshot: the application's state at `meta.index`
/// from position `cursor` (empty: the beginning) up to `next_cursor`.
/// Positions are opaque to Raft (the application's keys), so a broken
/// transfer resumes where the follower's writes stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotChunk {
    /// The snapshot this chunk belongs to.
    pub meta: SnapshotMeta,
    /// Where `data` starts; empty for the first chunk.
    pub cursor: Bytes,
    /// Where the next chunk starts.
    pub next_cursor: Bytes,
    /// The bytes, in the application's encoding.
    pub data: Bytes,
    /// Whether this is the final chunk.
    pub last: bool,
}

/// How far a follower got restoring a snapshot into its application: the
/// snapshot, and the position of the next chunk it needs. The application
/// keeps it durably until the restore finishes, so a node that stops
/// mid-restore resumes (same snapshot) or restarts (any other) instead of
/// serving a partly restored state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestorePoint {
    /// The index of the snapshot being restored.
    pub index: LogIndex,
    /// Its term.
    pub term: Term,
    /// The position of the next chunk to restore.
    pub next_cursor: Bytes,
}

impl RestorePoint {
    /// Returns the point of a restore of `(index, term)` that has taken no
    /// chunk yet.
    pub fn beginning(index: LogIndex, term: Term) -> RestorePoint {
        RestorePoint {
            index,
            term,
            next_cursor: Bytes::new(),
        }
    }
}
