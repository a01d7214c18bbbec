//! Deterministic simulation of Raft clusters in one thread (DESIGN.md
//! "Testing" 2): seeded network faults, partitions, crashes that lose what
//! was not persisted, clients with a linearizability-checked history, and
//! the safety invariants checked after every step.
//!
//! - [`cluster`]: nodes, virtual time, the Ready loop, crash and restart,
//!   log compaction and snapshot reads and restores.
//! - [`app`]: each node's application database (live and durable state).
//! - [`snapshot_reads`]: a leader's pinned views and pending reads.
//! - [`network`]: loss, duplication, delay, corruption, broken snapshot
//!   streams, partitions.
//! - [`invariants`]: one safety property per file.
//! - [`workload`] and [`kv`]: clients of a replicated register map.
//! - [`linearizability`]: the Wing-Gong/Lowe history checker.
//! - [`scenario`]: the DSL of the named scenario tests.
//! - [`swarm`]: random fault profiles per seed (a Figure 8 mode among
//!   them), safety then liveness.

pub mod app;
pub mod cluster;
pub mod invariants;
pub mod kv;
pub mod linearizability;
pub mod network;
pub mod scenario;
pub mod snapshot_reads;
pub mod swarm;
pub mod workload;
