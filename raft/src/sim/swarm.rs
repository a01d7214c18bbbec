//! Swarm testing (TigerBeetle's `options_swarm`): each seed draws its own
//! fault profile, runs a safety phase with every fault on and every
//! invariant checked after each step, then a liveness phase with faults
//! healed, and finally checks the client history for linearizability.
//!
//! The swarm runs any application: [`run_seed_of`] takes its clients
//! ([`SwarmClients`]), which drive the load, report their progress and
//! check their history; [`run_seed`] runs the register map's clients.
//!
//! A failure prints one line with the seed, the profile and the command
//! that replays it.

use std::fmt;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::core::{ConfChange, NodeId, Role};
use crate::sim::app::SimMachine;
use crate::sim::cluster::{Cluster, ClusterConfig, SnapshotStats};
use crate::sim::invariants::Violation;
use crate::sim::network::{Corrupted, NetworkFaults};
use crate::sim::workload::Workload;
use linearizability::{CheckResult, check_kv_history};

/// The fault and workload profile one seed runs with.
#[derive(Clone, Debug, PartialEq)]
pub struct SwarmProfile {
    /// Initial voters (1 to 7).
    pub voters: u64,
    /// Message loss, duplication and delay.
    pub faults: NetworkFaults,
    /// Per-tick probability of forming a partition.
    pub partition_rate: f64,
    /// Per-tick probability of healing it.
    pub heal_rate: f64,
    /// Partitions cut single directions instead of both.
    pub one_way: bool,
    /// Per-tick probability of crashing a node.
    pub crash_rate: f64,
    /// Per-tick probability of restarting a crashed node.
    pub restart_rate: f64,
    /// Probability of a crash at each crash point of a Ready.
    pub crash_in_ready: f64,
    /// Concurrent clients.
    pub clients: u64,
    /// Distinct keys.
    pub keys: u64,
    /// Share of reads among operations.
    pub read_fraction: f64,
    /// Per-tick probability that an idle client starts an operation.
    pub request_rate: f64,
    /// Probability that an idle client moves to a random node first.
    pub wander: f64,
    /// Ticks a client waits for an answer before giving up.
    pub client_timeout_ticks: u64,
    /// Entries applied between log compactions (0: never).
    pub compaction_interval: u64,
    /// Applied entries a compaction may leave in the log (drawn per
    /// compaction up to this).
    pub compaction_tail_max: u64,
    /// Snapshot chunk size (at least one whole record per chunk).
    pub snapshot_chunk_bytes: u64,
    /// Snapshot chunks in flight per follower (the transfer window).
    pub snapshot_chunks_in_flight: usize,
    /// Leader ticks without progress before a snapshot transfer resumes.
    pub snapshot_stall_ticks: u32,
    /// Snapshot reads are answered up to this many ticks late.
    pub snapshot_read_delay_ticks_max: u64,
    /// Probability that a snapshot read fails.
    pub snapshot_read_fail: f64,
    /// Probability that a leader keeps a stale view instead of pinning a
    /// new one.
    pub snapshot_read_stale: f64,
    /// Probability of a crash at each step of a follower's restore (see
    /// [`ClusterConfig::crash_in_restore`]).
    pub crash_in_restore: f64,
    /// Entry bytes per append message (small values split catch-up into
    /// many partial appends).
    pub message_bytes_max: u64,
    /// Append messages in flight per follower.
    pub inflight_messages_max: usize,
    /// Entry bytes in flight per follower (`u64::MAX`: unbounded).
    pub inflight_bytes_max: u64,
    /// Per-tick probability of a membership change attempt.
    pub conf_change_rate: f64,
    /// Per-tick probability of a leadership transfer attempt.
    pub transfer_rate: f64,
    /// Whether PreVote is on.
    pub pre_vote: bool,
    /// Whether CheckQuorum is on.
    pub check_quorum: bool,
    /// Length of the safety phase.
    pub safety_ticks: u64,
    /// Probability that a leader crashes right after its commit index
    /// advances (see [`ClusterConfig::crash_leader_after_commit`]).
    pub crash_leader_after_commit: f64,
    /// Probability that a new leader crashes right after taking office
    /// (see [`ClusterConfig::crash_new_leader`]).
    pub crash_new_leader: f64,
    /// Membership changes are attempted two at once (the second must be
    /// refused while the first is pending).
    pub conf_change_pairs: bool,
}

impl SwarmProfile {
    /// Draws a profile from `seed`. The dimensions added later (corruption,
    /// broken snapshot streams, the Figure 8 mode, paired membership
    /// changes, a byte-bounded in-flight window) come from a second stream,
    /// and those of snapshots on demand (compaction tail, chunk size,
    /// transfer window and stall, late, failed and stale snapshot reads,
    /// crashes inside a restore) from a third, so each stream draws what
    /// it drew before the next existed.
    pub fn draw(seed: u64) -> SwarmProfile {
        let mut profile = SwarmProfile::draw_original(seed);
        let mut rng = SmallRng::seed_from_u64(seed ^ 0x4649_4738_0000_0000);
        if rng.random_bool(0.4) {
            profile.faults.corrupt = rng.random_range(0.0..0.05);
        }
        if rng.random_bool(0.4) {
            profile.faults.snapshot_break = rng.random_range(0.0..0.2);
        }
        // Figure 8 (Raft §5.4.2): leaders crash right after taking office
        // or right after committing, while their small appends still sit
        // on a minority (lossy links), and come back soon to compete with
        // the nodes that took over.
        if rng.random_bool(0.3) {
            profile.voters = [3, 5][rng.random_range(0..2)];
            profile.faults.loss = rng.random_range(0.1..0.3);
            profile.crash_leader_after_commit = rng.random_range(0.1..0.5);
            profile.crash_new_leader = rng.random_range(0.2..0.5);
            profile.message_bytes_max = rng.random_range(1..64);
            profile.restart_rate = rng.random_range(0.05..0.3);
            profile.crash_rate = profile.crash_rate.min(0.002);
            profile.clients = rng.random_range(3..=5);
            profile.request_rate = rng.random_range(0.5..1.0);
        }
        // Operators racing each other: two membership changes at once, as
        // often as a few times per election timeout.
        if profile.conf_change_rate > 0.0 && rng.random_bool(0.75) {
            profile.conf_change_pairs = true;
            profile.conf_change_rate = rng.random_range(0.005..0.02);
        }
        // A byte-bounded in-flight window that a few entries fill.
        if rng.random_bool(0.3) {
            profile.inflight_bytes_max = rng.random_range(1..256);
        }
        profile.draw_snapshot_dimension(seed);
        profile
    }

    /// Draws the snapshot dimension (issue 15 §2): how much of the applied
    /// log compaction keeps, chunk size (down to one record per chunk),
    /// the transfer window and stall timeout, snapshot reads answered
    /// late, failing or from a stale view, and crashes at each step of a
    /// follower's restore.
    fn draw_snapshot_dimension(&mut self, seed: u64) {
        let mut rng = SmallRng::seed_from_u64(seed ^ 0x534E_4150_0000_0000);
        if self.compaction_interval == 0 && rng.random_bool(0.3) {
            self.compaction_interval = rng.random_range(2..20);
        }
        if rng.random_bool(0.5) {
            self.compaction_tail_max = rng.random_range(1..50);
        }
        if rng.random_bool(0.3) {
            self.snapshot_chunk_bytes = rng.random_range(1..16);
        }
        self.snapshot_chunks_in_flight = [1, 1, 2, 4, 8, 16][rng.random_range(0..6)];
        self.snapshot_stall_ticks = rng.random_range(2..40);
        if rng.random_bool(0.4) {
            self.snapshot_read_delay_ticks_max = rng.random_range(1..10);
        }
        if rng.random_bool(0.3) {
            self.snapshot_read_fail = rng.random_range(0.0..0.3);
        }
        if rng.random_bool(0.3) {
            self.snapshot_read_stale = rng.random_range(0.0..0.5);
        }
        if rng.random_bool(0.4) {
            self.crash_in_restore = rng.random_range(0.0..0.3);
        }
    }

    /// Draws the profile `seed` had before the later dimensions existed
    /// (all of them off): seeds found failing before then replay their
    /// original run with it through [`run_seed_with`].
    pub fn draw_original(seed: u64) -> SwarmProfile {
        let mut rng = SmallRng::seed_from_u64(seed ^ 0x5157_4152_4D00_0000);
        let voters = [1, 2, 3, 3, 3, 4, 5, 5, 6, 7][rng.random_range(0..10)];
        SwarmProfile {
            voters,
            faults: NetworkFaults {
                loss: rng.random_range(0.0..0.3),
                duplicate: rng.random_range(0.0..0.5),
                delay_ticks_max: rng.random_range(0..=4),
                corrupt: 0.0,
                snapshot_break: 0.0,
            },
            partition_rate: rng.random_range(0.0..0.02),
            heal_rate: rng.random_range(0.01..0.1),
            one_way: rng.random_bool(0.3),
            crash_rate: rng.random_range(0.0..0.01),
            restart_rate: rng.random_range(0.01..0.1),
            crash_in_ready: if rng.random_bool(0.3) {
                rng.random_range(0.0..0.002)
            } else {
                0.0
            },
            clients: rng.random_range(1..=5),
            keys: rng.random_range(1..=5),
            read_fraction: rng.random_range(0.0..0.6),
            request_rate: rng.random_range(0.1..1.0),
            wander: rng.random_range(0.0..0.3),
            client_timeout_ticks: rng.random_range(10..80),
            compaction_interval: if rng.random_bool(0.6) {
                rng.random_range(5..100)
            } else {
                0
            },
            compaction_tail_max: 0,
            snapshot_chunk_bytes: rng.random_range(16..512),
            snapshot_chunks_in_flight: 4,
            snapshot_stall_ticks: 20,
            snapshot_read_delay_ticks_max: 0,
            snapshot_read_fail: 0.0,
            snapshot_read_stale: 0.0,
            crash_in_restore: 0.0,
            message_bytes_max: if rng.random_bool(0.5) {
                rng.random_range(1..256)
            } else {
                4096
            },
            inflight_messages_max: rng.random_range(1..32),
            inflight_bytes_max: u64::MAX,
            conf_change_rate: if rng.random_bool(0.4) {
                rng.random_range(0.0..0.01)
            } else {
                0.0
            },
            transfer_rate: if rng.random_bool(0.3) {
                rng.random_range(0.0..0.005)
            } else {
                0.0
            },
            pre_vote: rng.random_bool(0.85),
            check_quorum: rng.random_bool(0.85),
            safety_ticks: rng.random_range(2000..4000),
            crash_leader_after_commit: 0.0,
            crash_new_leader: 0.0,
            conf_change_pairs: false,
        }
    }
}

/// What a passing seed did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeedReport {
    /// The seed.
    pub seed: u64,
    /// Ticks simulated.
    pub ticks: u64,
    /// Client operations in the history.
    pub operations: usize,
    /// The highest term reached.
    pub max_term: u64,
    /// Messages sent.
    pub messages: u64,
    /// Hash of the run's trace (determinism check).
    pub trace_hash: u64,
    /// The linearizability search ran out of budget on some key (the
    /// history was neither proven nor refuted).
    pub linearizability_inconclusive: bool,
    /// Messages damaged in flight and snapshot chunks lost to broken
    /// streams.
    pub corrupted: Corrupted,
    /// What compaction, snapshot reads and restores did.
    pub snapshots: SnapshotStats,
}

/// A failing seed, printable as the one-line replay instruction.
#[derive(Clone, Debug)]
pub struct Failure {
    /// The seed.
    pub seed: u64,
    /// Its profile.
    pub profile: Box<SwarmProfile>,
    /// The tick of the failure.
    pub tick: u64,
    /// What broke.
    pub violation: Violation,
    /// The command that runs the simulator, to which `--seed` is added.
    pub replay: &'static str,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let original = *self.profile != SwarmProfile::draw(self.seed)
            && *self.profile == SwarmProfile::draw_original(self.seed);
        write!(
            f,
            "SEED={} tick={} {} profile={:?} replay: {} --seed {}{}",
            self.seed,
            self.tick,
            self.violation,
            self.profile,
            self.replay,
            self.seed,
            if original { " --original-profile" } else { "" }
        )
    }
}

/// The command that replays a seed of the register map's swarm.
pub const KV_REPLAY: &str =
    "cargo run --release -p raft --no-default-features --features sim --bin raft-sim --";

/// The clients of a simulated application: they drive its load, report
/// their progress, and check what they saw once the cluster converged.
pub trait SwarmClients<M: SimMachine> {
    /// Consumes the cluster's events, then lets each idle client start an
    /// operation with probability `rate`, first moving to a random node
    /// with probability `wander`.
    fn drive(&mut self, cluster: &mut Cluster<M>, rate: f64, wander: f64);

    /// Returns the operations completed by each client so far.
    fn completed(&self) -> Vec<u64>;

    /// Returns the number of operations in the history.
    fn operations(&self) -> usize;

    /// Checks the history against the converged cluster (after taking the
    /// events its last steps left); returns whether the check was
    /// inconclusive (neither proven nor refuted).
    fn check(&mut self, cluster: &mut Cluster<M>) -> Result<bool, Violation>;
}

impl SwarmClients<crate::sim::kv::KvState> for Workload {
    fn drive(&mut self, cluster: &mut Cluster, rate: f64, wander: f64) {
        Workload::drive(self, cluster, rate, wander);
    }

    fn completed(&self) -> Vec<u64> {
        Workload::completed(self)
    }

    fn operations(&self) -> usize {
        self.history().len()
    }

    fn check(&mut self, _cluster: &mut Cluster) -> Result<bool, Violation> {
        check_history(self)
    }
}

/// Runs one seed of the register map with the profile it draws. A panic
/// inside the run (a core assertion such as "entry conflicts with
/// committed index") is reported as a failure of that seed.
pub fn run_seed(seed: u64) -> Result<SeedReport, Failure> {
    run_catching(seed, SwarmProfile::draw(seed), KV_REPLAY, run_seed_with)
}

/// Runs `run(seed, profile)`, reporting a panic as a failure of the seed,
/// replayed by `replay`.
pub fn run_catching(
    seed: u64,
    profile: SwarmProfile,
    replay: &'static str,
    run: impl FnOnce(u64, SwarmProfile) -> Result<SeedReport, Failure> + std::panic::UnwindSafe,
) -> Result<SeedReport, Failure> {
    let run_profile = profile.clone();
    match std::panic::catch_unwind(move || run(seed, run_profile)) {
        Ok(result) => result,
        Err(payload) => {
            let detail = panic_detail(payload.as_ref());
            Err(Failure {
                seed,
                profile: Box::new(profile),
                tick: 0,
                violation: Violation {
                    invariant: "panic",
                    detail,
                },
                replay,
            })
        }
    }
}

/// Returns the message a panic carried (the payload of a caught panic).
pub fn panic_detail(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_string()))
        .unwrap_or_else(|| "non-string panic".into())
}

/// Runs one seed of the register map with an explicit profile.
pub fn run_seed_with(seed: u64, profile: SwarmProfile) -> Result<SeedReport, Failure> {
    let workload = Workload::new(
        profile.clients,
        profile.keys,
        profile.read_fraction,
        profile.client_timeout_ticks,
    );
    run_seed_of::<crate::sim::kv::KvState, _>(seed, profile, workload, KV_REPLAY)
}

/// Runs one seed of application `M` with `clients`: the safety phase
/// (faults on, invariants checked after every step), the liveness phase
/// (faults healed), then the clients' check. A failure names `replay`.
pub fn run_seed_of<M: SimMachine + Default, C: SwarmClients<M>>(
    seed: u64,
    profile: SwarmProfile,
    mut clients: C,
    replay: &'static str,
) -> Result<SeedReport, Failure> {
    let mut cluster = Cluster::<M>::new(cluster_config(&profile), profile.faults.clone(), seed);
    let fail = |cluster: &Cluster<M>, violation: Violation| Failure {
        seed,
        profile: Box::new(profile.clone()),
        tick: cluster.now,
        violation,
        replay,
    };
    let mut next_id = profile.voters + 1;
    for _ in 0..profile.safety_ticks {
        inject_faults(&mut cluster, &profile, &mut next_id);
        clients.drive(&mut cluster, profile.request_rate, profile.wander);
        cluster.step().map_err(|v| fail(&cluster, v))?;
    }
    check_liveness(&mut cluster, &mut clients).map_err(|v| fail(&cluster, v))?;
    let inconclusive = clients.check(&mut cluster).map_err(|v| fail(&cluster, v))?;
    Ok(SeedReport {
        linearizability_inconclusive: inconclusive,
        seed,
        ticks: cluster.now,
        operations: clients.operations(),
        max_term: cluster.max_term().0,
        messages: cluster.network.sent_total(),
        trace_hash: cluster.trace_hash(),
        corrupted: cluster.network.corrupted,
        snapshots: cluster.snapshot_stats,
    })
}

fn cluster_config(profile: &SwarmProfile) -> ClusterConfig {
    let mut config = ClusterConfig::new(profile.voters);
    config.pre_vote = profile.pre_vote;
    config.check_quorum = profile.check_quorum;
    config.compaction_interval = profile.compaction_interval;
    config.compaction_tail_max = profile.compaction_tail_max;
    config.snapshot_chunk_bytes = profile.snapshot_chunk_bytes;
    config.snapshot_chunks_in_flight = profile.snapshot_chunks_in_flight;
    config.snapshot_stall_ticks = profile.snapshot_stall_ticks;
    config.snapshot_read_delay_ticks_max = profile.snapshot_read_delay_ticks_max;
    config.snapshot_read_fail = profile.snapshot_read_fail;
    config.snapshot_read_stale = profile.snapshot_read_stale;
    config.crash_in_restore = profile.crash_in_restore;
    config.message_bytes_max = profile.message_bytes_max;
    config.inflight_messages_max = profile.inflight_messages_max;
    config.inflight_bytes_max = profile.inflight_bytes_max;
    config.crash_in_ready = profile.crash_in_ready;
    config.crash_leader_after_commit = profile.crash_leader_after_commit;
    config.crash_new_leader = profile.crash_new_leader;
    config
}

/// Draws this tick's faults: partitions, crashes, restarts, membership
/// changes and leadership transfers.
fn inject_faults<M: SimMachine>(
    cluster: &mut Cluster<M>,
    profile: &SwarmProfile,
    next_id: &mut u64,
) {
    if !cluster.network.is_partitioned() && cluster.rng().random_bool(profile.partition_rate) {
        make_partition(cluster, profile.one_way);
    } else if cluster.network.is_partitioned() && cluster.rng().random_bool(profile.heal_rate) {
        cluster.network.heal();
    }
    if cluster.rng().random_bool(profile.crash_rate) {
        let live = cluster.live_ids();
        if !live.is_empty() {
            let victim = live[cluster.rng().random_range(0..live.len())];
            cluster.crash(victim);
        }
    }
    if cluster.rng().random_bool(profile.restart_rate) {
        let down: Vec<NodeId> = cluster
            .all_ids()
            .into_iter()
            .filter(|&id| !cluster.is_live(id))
            .collect();
        if !down.is_empty() {
            let index = cluster.rng().random_range(0..down.len());
            cluster.restart(down[index]);
        }
    }
    if cluster.rng().random_bool(profile.conf_change_rate) {
        change_membership(cluster, profile.voters, next_id);
        if profile.conf_change_pairs {
            change_membership(cluster, profile.voters, next_id);
        }
    }
    if cluster.rng().random_bool(profile.transfer_rate)
        && let Some(leader) = cluster.leader()
    {
        let voters: Vec<NodeId> = cluster
            .core(leader)
            .expect("live")
            .status()
            .membership
            .voters
            .into_iter()
            .collect();
        if voters.is_empty() {
            return;
        }
        let target = voters[cluster.rng().random_range(0..voters.len())];
        let _ = cluster
            .core_mut(leader)
            .expect("live")
            .transfer_leader(target);
    }
}

fn make_partition<M: SimMachine>(cluster: &mut Cluster<M>, one_way: bool) {
    let all = cluster.all_ids();
    let ids: Vec<NodeId> = all.iter().copied().collect();
    if one_way {
        for _ in 0..cluster.rng().random_range(1..=ids.len()) {
            let from = ids[cluster.rng().random_range(0..ids.len())];
            let to = ids[cluster.rng().random_range(0..ids.len())];
            cluster.network.cut_link(from, to);
        }
        return;
    }
    let side = ids
        .iter()
        .copied()
        .filter(|_| cluster.rng().random_bool(0.5))
        .collect();
    cluster.network.partition(&side, &all);
}

/// Tries one membership change at the leader: add a learner, promote one,
/// or remove a member, keeping at least `min_voters` voters (up to 3).
fn change_membership<M: SimMachine>(
    cluster: &mut Cluster<M>,
    initial_voters: u64,
    next_id: &mut u64,
) {
    let Some(leader) = cluster.leader() else {
        return;
    };
    let membership = cluster.core(leader).expect("live").status().membership;
    let min_voters = initial_voters.min(3) as usize;
    let change = match cluster.rng().random_range(0..3) {
        0 if *next_id <= initial_voters + 4 => {
            *next_id += 1;
            ConfChange::AddLearner(NodeId(*next_id - 1))
        }
        1 if !membership.learners.is_empty() => {
            ConfChange::PromoteLearner(*membership.learners.iter().next().expect("not empty"))
        }
        2 if membership.voters.len() > min_voters || !membership.learners.is_empty() => {
            let members: Vec<NodeId> = if membership.voters.len() > min_voters {
                membership.members().collect()
            } else {
                membership.learners.iter().copied().collect()
            };
            ConfChange::RemoveNode(members[cluster.rng().random_range(0..members.len())])
        }
        _ => return,
    };
    let _ = cluster.propose_conf_change(leader, change);
}

/// Heals every fault and checks that a leader emerges, every client
/// completes a new operation and every member converges, within a bound.
fn check_liveness<M: SimMachine, C: SwarmClients<M>>(
    cluster: &mut Cluster<M>,
    clients: &mut C,
) -> Result<(), Violation> {
    cluster.network.heal();
    cluster.network.faults = NetworkFaults::reliable();
    cluster.config.crash_in_ready = 0.0;
    cluster.config.crash_leader_after_commit = 0.0;
    cluster.config.crash_new_leader = 0.0;
    cluster.config.crash_in_restore = 0.0;
    cluster.config.snapshot_read_fail = 0.0;
    cluster.config.snapshot_read_stale = 0.0;
    for id in cluster.all_ids() {
        cluster.restart(id);
    }
    // Bounded twice: no progress for `stall_bound` ticks, or `bound` ticks
    // in all (a follower catching up with one entry per message is slow,
    // not stuck, as long as it progresses).
    let stall_bound = 100 * u64::from(cluster.config.election_ticks);
    let bound = 20 * stall_bound;
    let baseline = clients.completed();
    let mut progressed = false;
    let (mut last_progress, mut last_work) = (0, 0);
    for tick in 0..bound {
        clients.drive(cluster, if progressed { 0.0 } else { 1.0 }, 0.0);
        cluster.step()?;
        progressed = progressed
            || clients
                .completed()
                .iter()
                .zip(&baseline)
                .all(|(now, before)| now > before);
        if progressed && converged(cluster) {
            return Ok(());
        }
        let work = work_done(cluster);
        if work > last_work || !progressed {
            (last_progress, last_work) = (tick, work);
        }
        if tick - last_progress > stall_bound {
            break;
        }
    }
    Err(Violation {
        invariant: "liveness",
        detail: format!(
            "{} ticks after healing: leader {:?}, clients progressed {progressed}, converged {}; nodes: {}",
            cluster.now,
            cluster.leader(),
            converged(cluster),
            cluster.describe()
        ),
    })
}

/// Returns how far the live nodes got: the sum of their applied indexes
/// plus the snapshot chunks restored (a follower restoring a large state
/// progresses chunk by chunk before it applies anything).
fn work_done<M: SimMachine>(cluster: &Cluster<M>) -> u64 {
    cluster.snapshot_stats.chunks_restored
        + cluster
            .live_ids()
            .iter()
            .filter_map(|&id| cluster.core(id))
            .map(|core| core.status().applied.0)
            .sum::<u64>()
}

/// Returns whether a leader exists and every member applied its commit.
fn converged<M: SimMachine>(cluster: &Cluster<M>) -> bool {
    let Some(leader) = cluster.leader() else {
        return false;
    };
    let status = cluster.core(leader).expect("live").status();
    status.role == Role::Leader
        && status.membership.members().all(|member| {
            cluster
                .core(member)
                .is_some_and(|core| core.status().applied >= status.commit)
        })
}

/// Checks the client history; returns whether the search was inconclusive.
fn check_history(workload: &Workload) -> Result<bool, Violation> {
    match check_kv_history(&workload.history(), 2_000_000) {
        CheckResult::Ok => Ok(false),
        CheckResult::Inconclusive { .. } => Ok(true),
        CheckResult::Violation { key, operations } => Err(Violation {
            invariant: "linearizability",
            detail: format!(
                "history of key {key} is not linearizable: {} operations",
                operations.len()
            ),
        }),
    }
}
