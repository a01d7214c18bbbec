//! Shard controller: the configuration state machine and its server (issue 5).
//!
//! The controller holds the numbered configurations that say which replica
//! group owns each shard (DESIGN.md, "Sharding and configurations"). This
//! crate has, so far, only its pure part, which every replica runs
//! deterministically on the committed log:
//!
//! - [`types`]: ids ([`GroupId`], [`ShardId`], [`ConfigNum`]) and [`Config`].
//! - [`rebalance`](mod@rebalance): deterministic minimal-movement rebalancing.
//! - [`command`]: the log commands ([`Command`], [`Request`]).
//! - [`state_machine`]: [`ControllerState`], with at-most-once `apply`,
//!   `query`, and snapshots.
//! - [`error`]: [`AdminError`] (refusals, recorded as replies) and
//!   [`DecodeError`] (corrupt bytes).
//! - `codec` (private): the versioned binary format of requests and
//!   snapshots.
//!
//! The design decisions (rebalancing rules, error replies, encoding) are in
//! docs/shardctrler.md.

pub mod command;
pub mod error;
pub mod rebalance;
pub mod state_machine;
pub mod types;

mod codec;

pub use command::{Command, Request};
pub use error::{AdminError, DecodeError};
pub use rebalance::rebalance;
pub use state_machine::{ControllerState, RecordedReply, Session};
pub use types::{Config, ConfigNum, GroupId, ShardId};
