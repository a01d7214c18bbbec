//! Raft consensus for the sharded key/value store.
//!
//! - [`core`]: the pure, deterministic consensus state machine.
//! - [`session`]: at-most-once client sessions with expiry, for every state
//!   machine.
//! - [`storage`]: the durable log trait and its implementations.
//! - `transport` (feature `node`): carries messages between replicas over gRPC.
//! - `driver` (feature `node`): runs a node as a tokio task for an application.
//! - `metrics`, `observability` (feature `node`): metric names, `/metrics` and health.
//! - `replica` (feature `node`): the replica runtime every server binary
//!   runs its application on (start, serve, stop, exit codes, statuses).
//! - `exit_code` (feature `node`): the exit codes every server binary shares.
//! - `termination` (feature `node`): the SIGTERM / SIGINT a server stops on.
//! - `sim` (feature `sim`): the deterministic simulator that proves the
//!   core's safety and liveness under seeded faults.

#[cfg(feature = "node")]
mod byte_budget;
pub mod core;
#[cfg(feature = "node")]
pub mod driver;

#[cfg(feature = "node")]
pub mod app_meta;
#[cfg(feature = "node")]
pub mod app_snapshot;
#[cfg(feature = "node")]
pub mod exit_code;
#[cfg(feature = "node")]
pub mod metrics;
#[cfg(feature = "node")]
pub mod observability;
#[cfg(feature = "node")]
pub mod replica;
#[cfg(feature = "node")]
pub mod server_flags;
pub mod session;
pub mod storage;
#[cfg(feature = "node")]
pub mod termination;
#[cfg(feature = "node")]
pub mod transport;

#[cfg(feature = "sim")]
pub mod sim;
