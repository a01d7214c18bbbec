//! The replica runtime: what every server of a Raft group (`shardctrler`,
//! `shardkv`, the `raft-node` demo) runs its application on, so each
//! server adds only its state machine and its gRPC services.
//!
//! - [`options`](ReplicaOptions): a replica's options, from the shared
//!   flags ([`crate::server_flags`]) or field by field.
//! - [`ReplicaServer`]: opens (or bootstraps) the data dir, starts the
//!   node on the driver, serves the Raft peer service and the
//!   application's services on one gRPC port; waits for and stops it.
//! - [`run`]: the `main` of a server binary: logging, stop signals, the
//!   metrics recorder and the HTTP port, the exit code.
//! - [`routing`]: the one mapping of driver errors to reply statuses.
//! - [`StartError`], [`Stopped`]: why a replica did not start or
//!   stopped, each with its exit code.
//!
//! Invariants:
//! - An empty data dir is bootstrapped with the voters of `peers`; a used
//!   one resumes, and its stored membership wins (DESIGN.md "Public API",
//!   flags).
//! - Every metric series of a server process carries `group` and `node`
//!   (global labels of the recorder; a series' own labels win).
//! - A server exits 0 when stopped by a signal or when its node ends
//!   cleanly, and otherwise with the code of [`crate::exit_code`] its
//!   cause maps to. A stopped replica's node thread has ended before
//!   [`run`] returns, and the runtime, whose tasks may hold the database,
//!   is dropped with it: the database closes before the process ends.

mod error;
mod options;
mod process;
mod routing;
mod server;

pub use error::{StartError, Stopped};
pub use options::ReplicaOptions;
pub use process::run;
pub use routing::{Routing, routing};
pub use server::{ReplicaServer, open_storage};
