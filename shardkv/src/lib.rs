//! Replica group server (DESIGN.md "Reconfiguration in a group"): the
//! group's logic as pure parts under thin I/O shells, so the simulator can
//! run the migration protocol.
//!
//! - [`shards`]: the shards one group holds, their states (Serving,
//!   Pulling, Sending, Cleaning) and the transitions a new configuration
//!   and each step of a move make.
//! - [`codec`]: the log entries as the internal protobuf `shardkv.v1`.
//! - [`follower`]: what the leader does next: the configuration to
//!   propose (with the holders of unowned shards) and the moves to drive.
//! - [`ops`]: client writes, their replies, and the key and value limits.
//! - [`machine`]: the replicated state machine: writes at most once per
//!   shard session, configurations, shard installs and hand-overs, over any
//!   [`machine::ShardData`] (RocksDB on a server, a map in tests).
//! - [`store_rocks`]: the machine over RocksDB, the driver's state
//!   machine for a group replica (one batch per applied run, snapshots),
//!   and the reader that serves Get from one consistent view;
//!   [`published`]: the sequence lock that shares the applied shard table
//!   with that reader.
//! - [`service`]: the public `kv.v1.ShardKv` service.
//! - [`config_watch`]: the leader's loop that follows the controller;
//!   [`controller_stream`]: the controller's Watch stream that wakes it.
//! - [`transfer`]: the holder's side of a move (the internal
//!   `ShardTransfer` service); [`mover`]: the new owner's side.
//! - [`admin`]: the internal `GroupAdmin` service (`kvctl status`).
//! - [`metrics`]: the `shardkv_*` metric names.
//! - [`server`]: [`server::GroupReplica`], a running replica (store,
//!   service, follower on the replica runtime).
//! - `sim` (feature `sim`): the state machine as the deterministic
//!   simulator replicates it.

pub mod admin;
pub mod codec;
pub mod config_watch;
pub mod controller_stream;
pub mod follower;
pub mod machine;
pub mod metrics;
pub mod mover;
pub mod ops;
pub mod published;
pub mod server;
pub mod service;
pub mod session_records;
pub mod shards;
#[cfg(feature = "sim")]
pub mod sim;
pub mod store_rocks;
pub mod transfer;
