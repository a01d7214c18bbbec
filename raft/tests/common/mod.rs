//! Shared by the scenario test files: runs a scenario under a fixed seed
//! and turns any failure (an `Err` from the DSL, a broken invariant, a
//! panic in the core) into a panic whose message starts with
//! `SEED=<seed>`, so every failure names the seed that replays it.

#![allow(
    dead_code,
    reason = "each scenario file uses its own subset of these helpers"
)]

use std::panic::{AssertUnwindSafe, catch_unwind};

use raft::sim::scenario::ScenarioResult;

/// Runs `scenario` once per seed; panics with `SEED=<seed> <error>` on
/// the first failure.
pub fn run_seeds(seeds: &[u64], scenario: impl Fn(u64) -> ScenarioResult<()>) {
    for &seed in seeds {
        match catch_unwind(AssertUnwindSafe(|| scenario(seed))) {
            Ok(Ok(())) => {}
            Ok(Err(error)) => panic!("SEED={seed} {error}"),
            Err(payload) => {
                let detail = raft::sim::swarm::panic_detail(payload.as_ref());
                panic!("SEED={seed} panicked: {detail}");
            }
        }
    }
}

/// Returns `Err(what())` unless `condition` holds: the scenario form of
/// `assert!`, so the failure reaches [`run_seeds`] and gets its seed.
pub fn ensure(condition: bool, what: impl FnOnce() -> String) -> ScenarioResult<()> {
    if condition { Ok(()) } else { Err(what()) }
}

/// Returns `count` election timeouts in ticks (the base timeout; each
/// node draws its own from `[election_ticks, 2 * election_ticks)`).
pub fn election_timeouts(cluster: &raft::sim::cluster::Cluster, count: u64) -> u64 {
    count * u64::from(cluster.config.election_ticks)
}

/// Returns the node `offset` places after `id` in the ring `1..=voters`
/// (the labs' `(leader + offset) % servers`).
pub fn node_after(id: raft::core::NodeId, offset: u64, voters: u64) -> raft::core::NodeId {
    raft::core::NodeId((id.0 - 1 + offset) % voters + 1)
}
