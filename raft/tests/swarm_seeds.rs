//! Runs the swarm simulation over a fixed range of seeds: each seed draws a
//! fault profile, runs thousands of steps with every safety invariant
//! checked after each, then a liveness phase, then the linearizability
//! check. CI runs seeds 0..1000 split in four tests so they run in
//! parallel. A failure lists each failing seed with its replay command.
//!
//! The first regression seeds below were found before the profile gained
//! its later dimensions (corruption, broken snapshot streams, the Figure 8
//! mode, paired membership changes); they replay their original runs, trace
//! for trace, with [`SwarmProfile::draw_original`]. The last ones replay
//! with the current profile.

use raft::sim::seeds::assert_seeds_pass;
use raft::sim::swarm::{SwarmProfile, run_seed, run_seed_with};

/// Replays `seed` as it ran when it was found (see the module doc).
fn replay_original(seed: u64) {
    if let Err(failure) = run_seed_with(seed, SwarmProfile::draw_original(seed)) {
        panic!("{failure}");
    }
}

fn run_range(start: u64, end: u64) {
    assert_seeds_pass(start..end, run_seed);
}

#[test]
fn swarm_seeds_0_to_250_hold_every_invariant() {
    run_range(0, 250);
}

#[test]
fn swarm_seeds_250_to_500_hold_every_invariant() {
    run_range(250, 500);
}

#[test]
fn swarm_seeds_500_to_750_hold_every_invariant() {
    run_range(500, 750);
}

#[test]
fn swarm_seeds_750_to_1000_hold_every_invariant() {
    run_range(750, 1000);
}

// SEED=6362 (one initial voter, grown and shrunk by membership changes
// under crashes): a removed leader handing off to the single voter left
// answered a read alone, with the single-voter fast path, after that voter
// had committed a write in a newer term. See also
// `removed_leader_does_not_answer_reads_alone`.
#[test]
fn swarm_seed_6362_removed_leader_reads_stay_linearizable() {
    replay_original(6362);
}

// SEED=14477 (liveness): a leader that removed itself crashed after its
// removal committed but before the last voter heard of the commit; back as
// a follower with a longer log it refused its vote, and the voter, still on
// the old membership, could not be elected. Vote answers now carry the
// commit index; see also
// `removed_leader_crashing_after_commit_does_not_strand_the_last_voter`.
#[test]
fn swarm_seed_14477_last_voter_is_not_stranded_by_a_removed_leader() {
    replay_original(14477);
}

// SEEDS 12061 and 14873 (liveness, found once the simulator modelled power
// failures): the last voter applied a node's removal, the removed node was
// shut down, then a power failure took the voter's unsynced commit index
// back below the removal, so it replayed into the old membership and
// needed the shut-down node's vote. Applying a membership change is a
// synced write (the driver saves the membership), which the simulator now
// mirrors.
#[test]
fn swarm_seeds_12061_and_14873_survive_power_failures_after_a_removal() {
    for seed in [12061, 14873] {
        replay_original(seed);
    }
}

/// Replays `seed` with the current profile.
fn replay(seed: u64) {
    if let Err(failure) = run_seed(seed) {
        panic!("{failure}");
    }
}

// SEED=1671 (snapshots streamed on demand): a follower's restore finished
// with an unsynced write and was acknowledged; a power failure took the
// finish back to the restore mark, and the leader, told the follower held
// the snapshot, never sent it again: the follower stayed restoring for
// good. The finish is synced now.
#[test]
fn swarm_seed_1671_an_acknowledged_restore_survives_a_power_failure() {
    replay(1671);
}

// SEED=2190 (snapshots streamed on demand): a restore installed over a log
// that held the snapshot's last entry handed the entries the snapshot
// covered to the application again (entry 2 after a restore at 61). The
// applied index now moves to the snapshot's.
#[test]
fn swarm_seed_2190_a_restore_is_never_followed_by_the_entries_it_covers() {
    replay(2190);
}
