//! Deterministic simulation of Raft clusters in one thread (DESIGN.md
//! "Testing" 2): seeded network faults, partitions, crashes that lose what
//! was not persisted, clients whose history is checked, and the safety
//! invariants checked after every step. It replicates any pure state
//! machine ([`app::SimMachine`]); the register map of [`kv`] is the
//! default, the shard controller's state machine runs here too (its
//! clients live in `shardctrler`).
//!
//! - [`cluster`]: nodes, virtual time, the Ready loop, crash and restart,
//!   log compaction and snapshot reads and restores.
//! - [`app`]: the application trait and each node's application database
//!   (live and durable state).
//! - [`snapshot_reads`]: a leader's pinned views and pending reads.
//! - [`network`]: loss, duplication, delay, corruption, broken snapshot
//!   streams, partitions.
//! - [`invariants`]: one safety property per file.
//! - [`workload`] and [`kv`]: clients of a replicated register map.
//! - [`scenario`]: the DSL of the named scenario tests.
//! - [`seeds`]: runs a range of seeds on worker threads and reports them.
//! - [`swarm`]: random fault profiles per seed (a Figure 8 mode among
//!   them), safety then liveness, for any application and its clients.

pub mod app;
pub mod cluster;
pub mod invariants;
pub mod kv;
pub mod network;
pub mod scenario;
pub mod seeds;
pub mod snapshot_reads;
pub mod swarm;
pub mod workload;
