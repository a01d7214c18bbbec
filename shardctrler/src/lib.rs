//! Shard controller: the configuration state machine and its server.
//!
//! The controller holds the numbered configurations that say which replica
//! group owns each shard (DESIGN.md, "Sharding and configurations"). Its
//! pure part, which every replica runs deterministically on the committed
//! log:
//!
//! - [`types`]: ids ([`GroupId`], [`ShardId`], [`ConfigNum`]) and [`Config`]
//!   (`proto::config`, shared with the group servers and the clients).
//! - [`rebalance`](mod@rebalance): deterministic minimal-movement rebalancing;
//!   [`rebalance_check`] judges one independently.
//! - [`address`](mod@address): the `host:port` syntax a Join's server
//!   addresses must follow (`proto::address`, shared by every side).
//! - [`command`]: the log commands ([`Command`], [`Request`]).
//! - [`state_machine`]: [`ControllerState`], with at-most-once `apply`,
//!   `query`, and snapshots.
//! - [`error`]: [`AdminError`] (refusals, recorded as replies) and
//!   [`DecodeError`] (corrupt bytes).
//! - `codec` (private): the versioned binary format of requests and
//!   snapshots.
//!
//! Its I/O shell, which the `shardctrler` binary runs:
//!
//! - [`store_rocks`]: [`ControllerStore`], the driver's state machine over
//!   RocksDB (one WriteBatch per entry with the applied index).
//! - [`shared`]: [`SharedState`], the applied state the service reads.
//! - [`service`]: [`CtrlerService`], the `kv.v1.ShardCtrler` gRPC service.
//! - [`convert`]: wire messages to and from the controller's types.
//! - [`server`]: [`Replica`], a running replica (node, gRPC server).
//! - [`metrics`]: the `shardctrler_*` metric names.
//!
//! Under the simulator (feature `sim`): `sim`, the state machine replicated
//! under seeded faults with retrying admins (docs/shardctrler.md).
//!
//! The design decisions (rebalancing rules, error replies, encoding) are in
//! docs/shardctrler.md.

pub use proto::address;
pub mod command;
pub mod convert;
pub mod error;
pub mod metrics;
pub mod rebalance;
pub mod rebalance_check;
pub mod server;
pub mod service;
pub mod shared;
#[cfg(feature = "sim")]
pub mod sim;
pub mod state_machine;
pub mod store_rocks;
pub use proto::config as types;

mod codec;

pub use command::{Command, Request};
pub use error::{AdminError, DecodeError, StartError};
pub use rebalance::rebalance;
pub use server::{Replica, ReplicaOptions};
pub use service::CtrlerService;
pub use shared::SharedState;
pub use state_machine::{ControllerState, RecordedReply, Session};
pub use store_rocks::ControllerStore;
pub use types::{Config, ConfigNum, GroupId, ShardId};
