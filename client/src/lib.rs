//! Client library of the sharded key/value store, and the `kvctl` command
//! line (`src/bin/kvctl.rs`).
//!
//! - [`ctrler`]: [`CtrlerClient`], the client of the shard controller group:
//!   leader discovery, retries under a deadline, at-most-once writes through
//!   a `(client_id, seq)` session, and [`ConfigStream`], the reconnecting
//!   configuration watch.
//! - [`retry`]: [`Backoff`], capped exponential delays cut to a deadline.
//! - [`error`]: [`ClientError`], why a call failed.
//! - [`format`]: human (table) and JSON renderings of a configuration.
//! - [`status`]: every group replica's status, for `kvctl status`.
//!
//! - [`kv`]: [`Client`], the data client: routes keys to the group owning
//!   their shard, follows leaders and configurations, at-most-once writes.
//! - `replicas` (private): the servers of one group and the one retry loop
//!   both clients run.
//!
//! This crate depends on `proto` only (DESIGN.md "Parts and where they
//! live").

pub mod ctrler;
pub mod error;
pub mod format;
pub mod kv;
mod replicas;
pub mod retry;
pub mod status;

pub use ctrler::{ConfigStream, CtrlerClient, CtrlerClientOptions};
pub use error::ClientError;
pub use kv::Client;
pub use replicas::CallOptions;
pub use retry::Backoff;
