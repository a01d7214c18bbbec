//! Raft consensus for the sharded key/value store.
//!
//! - [`core`]: the pure, deterministic consensus state machine.
//! - [`storage`]: the durable log trait and its implementations.
//! - `sim` (feature `sim`): the deterministic simulator that proves the
//!   core's safety and liveness under seeded faults.

pub mod core;
pub mod storage;

#[cfg(feature = "sim")]
pub mod sim;
