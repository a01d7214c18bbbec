//! The migration protocol under seeded faults (issue 18): each seed runs
//! the controller and several replica groups in one simulated world while
//! admins join, leave and move and clients read, write and append with
//! retries; the invariants are checked after every step, then liveness
//! once healed, then the clients' history. A failure lists each failing
//! seed with its replay command
//! (`cargo run -p migration-sim --bin migration-sim -- --seed S`); the long
//! run is `--seeds N` (README, docs/migration-sim.md).

use migration_sim::run_seed;
use raft::sim::seeds::assert_seeds_pass;

#[test]
fn migration_seeds_0_to_250_keep_every_promise() {
    assert_seeds_pass(0..250, run_seed);
}

#[test]
fn migration_seeds_250_to_500_keep_every_promise() {
    assert_seeds_pass(250..500, run_seed);
}

#[test]
fn migration_seeds_500_to_750_keep_every_promise() {
    assert_seeds_pass(500..750, run_seed);
}

#[test]
fn migration_seeds_750_to_1000_keep_every_promise() {
    assert_seeds_pass(750..1000, run_seed);
}

// Goal: a seed replays exactly (a failure's replay command reproduces it).
// Method: run one seed twice and compare everything it reports, the hash
// of every cluster's trace and of the clients' history among it.
#[test]
fn a_migration_seed_replays_identically() {
    let first = run_seed(7).unwrap_or_else(|failure| panic!("{failure}"));
    let second = run_seed(7).unwrap_or_else(|failure| panic!("{failure}"));
    assert_eq!(first, second);
    assert!(first.operations > 0, "the clients completed operations");
    assert!(first.configs > 0, "the admins made configurations");
}
