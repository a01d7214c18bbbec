//! The shard controller under the deterministic simulator (feature `sim`):
//! its real state machine replicated by simulated Raft groups under seeded
//! faults (message loss, duplication, delay and corruption, partitions,
//! crashes with power failures, leader changes, membership changes), while
//! admins retry Join, Leave and Move across leader changes.
//!
//! - `machine`: [`CtrlerMachine`], the [`ControllerState`](crate::ControllerState)
//!   as a [`SimMachine`](raft::sim::app::SimMachine).
//! - `clients`: [`AdminClients`], the admins and their retries.
//! - `history_check`: the end-of-seed check: at most once, balanced and
//!   minimal configurations, identical histories on every replica.
//!
//! Every Raft invariant of the simulator holds here too (state machine
//! safety compares each replica's whole state with the reference at each
//! index it is observed at). `ctrler-sim --seeds N` runs a range; a
//! failure prints the seed, its profile and the replay command.

mod clients;
mod history_check;
mod machine;

pub use clients::AdminClients;
pub use machine::{CtrlerMachine, SIM_SHARDS};

use raft::sim::swarm::{Failure, SeedReport, SwarmProfile, run_catching, run_seed_of};

/// The command that replays a seed of the controller's simulation.
/// (The dev profile builds the controller and Raft optimized, and spares a
/// second, release build of RocksDB.)
pub const REPLAY: &str = "cargo run -p shardctrler --features sim --bin ctrler-sim --";

/// Runs one seed of the controller with the profile it draws; a panic is a
/// failure of the seed.
pub fn run_seed(seed: u64) -> Result<SeedReport, Failure> {
    run_catching(seed, SwarmProfile::draw(seed), REPLAY, run_seed_with)
}

/// The controller's state is tens of kilobytes where the register map's is
/// a few hundred bytes: its snapshot chunks are this many times the
/// profile's, so a transfer takes as many chunks as the register map's.
const CHUNK_BYTES_SCALE: u64 = 32;

/// Runs one seed of the controller with `profile`: its clients are admins
/// (`profile.clients` of them) over `profile.keys + 1` gids, and its
/// snapshot chunks are `CHUNK_BYTES_SCALE` times the profile's.
pub fn run_seed_with(seed: u64, mut profile: SwarmProfile) -> Result<SeedReport, Failure> {
    profile.snapshot_chunk_bytes *= CHUNK_BYTES_SCALE;
    let admins = AdminClients::new(
        profile.clients,
        profile.keys + 1,
        profile.client_timeout_ticks,
    );
    run_seed_of::<CtrlerMachine, _>(seed, profile, admins, REPLAY)
}
