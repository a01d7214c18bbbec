//! Determinism of the simulator (madsim's CHECK_DETERMINISM, STYLE.md C):
//! a swarm seed run twice gives the same report, trace hash included, so
//! any failing seed replays exactly.

mod common;

use common::{ensure, run_seeds};
use raft::sim::swarm::run_seed;

// Goal: the same seed produces the same run.
// Method: run a few swarm seeds (random cluster size, faults, crashes,
// membership changes, clients) twice each and compare the whole
// `SeedReport`: ticks, operations, highest term, messages and trace hash.
// Ports: madsim's determinism check; openraft tests-turmoil's replay.
#[test]
fn swarm_seed_runs_are_deterministic() {
    run_seeds(&[0, 1, 7, 42], |seed| {
        let first = run_seed(seed).map_err(|failure| failure.to_string())?;
        let second = run_seed(seed).map_err(|failure| failure.to_string())?;
        ensure(first == second, || {
            format!("two runs differ: {first:?} then {second:?}")
        })
    });
}
