//! The Raft consensus core: a deterministic state machine with no I/O, in
//! the style of etcd's raft. Inputs are ticks, messages and requests; the
//! output is one [`Ready`] batch at a time (see [`ready`] for the contract).
//! Time is ticks and randomness a seeded RNG, so the simulator can replay
//! any run from its seed.

mod config;
mod election;
mod error;
mod inflights;
mod log;
mod membership;
mod message;
mod node;
mod progress;
mod quorum;
mod raft;
mod read_index;
pub mod ready;
mod replication;
mod snapshot;
pub mod storage;
mod transfer;
mod types;
mod unstable;

#[cfg(test)]
mod purity_test;

pub use config::Config;
pub use error::{Error, StorageError, describe_position};
pub use message::{Message, MessageBody};
pub use node::{Node, ProposalId, Status};
pub use raft::Role;
pub use ready::{ReadState, Ready, SnapshotRequest, SoftState};
pub use snapshot::chunk_crc32;
pub use types::{
    ConfChange, Entry, EntryKind, HardState, LogIndex, Membership, NodeId, RestorePoint,
    SnapshotChunk, SnapshotMeta, Term,
};
