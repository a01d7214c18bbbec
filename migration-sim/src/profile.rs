//! The fault and workload profile of one seed (swarm testing: each seed
//! draws its own mix, so some seeds hammer one dimension while others
//! leave it out).
//!
//! Invariant: the profile is a function of the seed alone.

use raft::sim::network::NetworkFaults;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// What one seed runs with.
#[derive(Clone, Debug, PartialEq)]
pub struct MigrationProfile {
    /// Replica groups in the world (gids `1..=groups`), each of which the
    /// admins join, leave and move shards to.
    pub groups: u64,
    /// Voters per replica group.
    pub group_voters: u64,
    /// Voters of the controller group.
    pub ctrler_voters: u64,
    /// Raft traffic faults inside every group.
    pub raft_faults: NetworkFaults,
    /// Loss of a call or reply between groups (transfer, delete, query).
    pub call_loss: f64,
    /// Duplication of a call or reply between groups.
    pub call_duplicate: f64,
    /// Calls and replies arrive up to this many ticks late (reordering).
    pub call_delay_ticks_max: u64,
    /// Per-tick probability of partitioning the nodes of one group.
    pub partition_rate: f64,
    /// Per-tick probability of cutting the links between two groups (the
    /// controller counts as one).
    pub group_cut_rate: f64,
    /// Per-tick probability of healing the partitions and cuts.
    pub heal_rate: f64,
    /// Per-tick probability of crashing one replica.
    pub crash_rate: f64,
    /// Share of crashes that are power failures (unsynced writes lost).
    pub power_failure_share: f64,
    /// Per-tick probability of a power failure of every replica of one
    /// group.
    pub group_crash_rate: f64,
    /// Per-tick probability of restarting one crashed replica.
    pub restart_rate: f64,
    /// Per-tick probability of asking one group's leader to hand over.
    pub transfer_rate: f64,
    /// Entries applied between log compactions (0: never).
    pub compaction_interval: u64,
    /// Raft snapshot chunk size, in bytes.
    pub snapshot_chunk_bytes: u64,
    /// Bytes of records per shard chunk a holder sends (at least one).
    pub transfer_bytes_max: u64,
    /// Concurrent key/value clients.
    pub clients: u64,
    /// Distinct keys.
    pub keys: u64,
    /// Share of reads among operations.
    pub read_fraction: f64,
    /// Per-tick probability that an idle client starts an operation.
    pub request_rate: f64,
    /// Per-tick probability that an idle client sends one of its answered
    /// writes again (a late duplicate).
    pub late_duplicate_rate: f64,
    /// Concurrent admins.
    pub admins: u64,
    /// Admin activity (the controller's admins act a tenth as often).
    pub admin_rate: f64,
    /// Length of the safety phase.
    pub safety_ticks: u64,
    /// The churn mode: configurations in quick succession while whole
    /// groups lose power and shards move in one-record chunks.
    pub churn: bool,
}

impl MigrationProfile {
    /// Draws the profile of `seed`; one seed in four runs the churn mode
    /// (drawn from a second stream, so the other dimensions stay as they
    /// were drawn before it existed).
    pub fn draw(seed: u64) -> MigrationProfile {
        let mut profile = MigrationProfile::draw_base(seed);
        let mut rng = SmallRng::seed_from_u64(seed ^ 0x4348_5552_4E00_0000);
        if rng.random_bool(0.25) {
            profile.churn = true;
            profile.admins = 3;
            profile.admin_rate = rng.random_range(0.5..1.0);
            profile.group_crash_rate = rng.random_range(0.001..0.005);
            profile.restart_rate = rng.random_range(0.1..0.3);
            profile.transfer_bytes_max = 1;
            profile.request_rate = rng.random_range(0.5..1.0);
        }
        profile
    }

    /// Draws every dimension but the churn mode.
    fn draw_base(seed: u64) -> MigrationProfile {
        let mut rng = SmallRng::seed_from_u64(seed ^ 0x4D49_4752_4154_4521);
        let lossy = rng.random_bool(0.7);
        MigrationProfile {
            groups: rng.random_range(2..=4),
            group_voters: [1, 3, 3, 3, 5][rng.random_range(0..5)],
            ctrler_voters: [1, 3, 3][rng.random_range(0..3)],
            raft_faults: NetworkFaults {
                loss: if lossy {
                    rng.random_range(0.0..0.2)
                } else {
                    0.0
                },
                duplicate: rng.random_range(0.0..0.3),
                delay_ticks_max: rng.random_range(0..=4),
                corrupt: 0.0,
                snapshot_break: 0.0,
            },
            call_loss: if lossy {
                rng.random_range(0.0..0.3)
            } else {
                0.0
            },
            call_duplicate: rng.random_range(0.0..0.3),
            call_delay_ticks_max: rng.random_range(0..=8),
            partition_rate: pick(&mut rng, 0.5, 0.0..0.01),
            group_cut_rate: pick(&mut rng, 0.5, 0.0..0.01),
            heal_rate: rng.random_range(0.01..0.1),
            crash_rate: pick(&mut rng, 0.6, 0.0..0.01),
            power_failure_share: rng.random_range(0.0..1.0),
            group_crash_rate: pick(&mut rng, 0.3, 0.0..0.002),
            restart_rate: rng.random_range(0.02..0.2),
            transfer_rate: pick(&mut rng, 0.3, 0.0..0.005),
            compaction_interval: if rng.random_bool(0.6) {
                rng.random_range(5..60)
            } else {
                0
            },
            snapshot_chunk_bytes: rng.random_range(64..2048),
            transfer_bytes_max: [1, 16, 64, 1 << 20][rng.random_range(0..4)],
            clients: rng.random_range(1..=4),
            keys: rng.random_range(2..=10),
            read_fraction: rng.random_range(0.1..0.6),
            request_rate: rng.random_range(0.1..1.0),
            late_duplicate_rate: pick(&mut rng, 0.7, 0.0..0.02),
            admins: rng.random_range(1..=3),
            admin_rate: rng.random_range(0.05..0.3),
            safety_ticks: rng.random_range(1500..3000),
            churn: false,
        }
    }
}

/// Draws from `range` with probability `share`, else 0.
fn pick(rng: &mut SmallRng, share: f64, range: std::ops::Range<f64>) -> f64 {
    if rng.random_bool(share) {
        rng.random_range(range)
    } else {
        0.0
    }
}
