//! The commands the controller's Raft log carries (DESIGN.md, "Sharding and
//! configurations", "Public API").
//!
//! This module owns [`Command`] and its session envelope [`Request`]. They are
//! plain values: a request may hold bad input (an empty list, gid 0, ...);
//! `ControllerState::apply` is where input is validated, so every replica
//! refuses the same requests. Queries are not commands: they read the state
//! after a ReadIndex barrier and never enter the log.
//!
//! Invariant: a request encodes to bytes (`Request::encode`) that decode back
//! to an equal request; see `codec.rs` for the format.

use std::collections::BTreeMap;

use crate::error::DecodeError;
use crate::types::{GroupId, ShardId};

/// One configuration change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Adds groups with their servers, then rebalances.
    Join {
        /// The servers (`host:port`) of each new group, by gid.
        groups: BTreeMap<GroupId, Vec<String>>,
    },
    /// Removes groups, then rebalances their shards onto the others.
    Leave {
        /// The gids to remove, in the order the admin gave them.
        gids: Vec<GroupId>,
    },
    /// Gives one shard to one group, without rebalancing.
    Move {
        /// The shard to move.
        shard: ShardId,
        /// The group that will own it.
        gid: GroupId,
    },
}

/// A command with the client session that makes retries safe: the controller
/// executes each `(client_id, seq)` at most once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The client's random non-zero id.
    pub client_id: u64,
    /// The client's sequence number: starts at 1, one more per request.
    pub seq: u64,
    /// The change requested.
    pub command: Command,
    /// The proposing leader's clock, in ms since the Unix epoch (0 when
    /// unknown): the time sessions expire by, logged so every replica
    /// judges alike.
    pub timestamp_ms: u64,
}

impl Request {
    /// Returns the log-entry encoding of this request (format in `codec.rs`
    /// and docs/shardctrler.md).
    pub fn encode(&self) -> Vec<u8> {
        crate::codec::encode_request(self)
    }

    /// Decodes a request written by [`Request::encode`].
    ///
    /// # Errors
    ///
    /// Returns a [`DecodeError`] for any input that is not exactly one
    /// well-formed request; never panics.
    pub fn decode(bytes: &[u8]) -> Result<Request, DecodeError> {
        crate::codec::decode_request(bytes)
    }
}
