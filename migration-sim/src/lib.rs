//! The shard migration protocol under deterministic simulation (DESIGN.md
//! "Testing" 2, "Reconfiguration in a group"): the controller group and
//! several replica groups in one simulated world, each a Raft cluster of
//! the simulator running the real state machine (the controller's
//! `ControllerState`, the group's `GroupMachine`) and the real pure parts
//! of reconfiguration (`plan_next`, `move_tasks`, chunk reads, installs,
//! hand-overs, sessions), while admins join, leave and move and clients
//! read, write and append with retries. Each seed draws its own faults
//! ([`profile`]); the invariants are checked after every step
//! ([`checks`]), then liveness once healed, then the clients' history.
//!
//! - [`world`]: the clusters, the calls between them, one tick.
//! - [`mailbox`]: the calls between groups and to the controller, with
//!   loss, duplication, delay and cut links.
//! - [`shell`]: each replica's follower, mover and transfer service.
//! - [`clients`]: the key/value clients and their history.
//! - [`committed`]: each group's committed state, what the checks see.
//! - [`checks`]: the invariants.
//! - [`runner`]: seeds in parallel, seeds per second, replay lines.
//!
//! A failure prints one line: the seed, the violation, the profile and the
//! command that replays it.

pub mod checks;
pub mod clients;
pub mod committed;
pub mod mailbox;
pub mod profile;
pub mod runner;
pub mod shell;
pub mod world;

use std::fmt;

use raft::sim::invariants::Violation;

use crate::profile::MigrationProfile;
use crate::world::World;

/// The command that replays a seed (add `--seed S`).
pub const REPLAY: &str = "cargo run -p migration-sim --bin migration-sim --";

/// Ticks without progress after healing before the run counts as stuck.
const STALL_TICKS: u64 = 3000;
/// Ticks after healing before the run counts as stuck, whatever happens.
const LIVENESS_TICKS: u64 = 30_000;

/// What a passing seed did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeedReport {
    /// The seed.
    pub seed: u64,
    /// Ticks simulated.
    pub ticks: u64,
    /// Client operations in the history.
    pub operations: usize,
    /// Admin requests answered.
    pub admin_requests: usize,
    /// The latest configuration.
    pub configs: u64,
    /// Install entries carrying a shard's last chunk, over all groups.
    pub installs: u64,
    /// Calls sent between groups.
    pub calls: u64,
    /// Snapshots restored by lagging replicas.
    pub restores: u64,
    /// The faults drawn.
    pub faults: world::FaultCounts,
    /// The linearizability search ran out of budget on some key.
    pub inconclusive: bool,
    /// Hash of the run (determinism check).
    pub trace_hash: u64,
}

/// A failing seed, printable as its replay line.
#[derive(Clone, Debug)]
pub struct Failure {
    /// The seed.
    pub seed: u64,
    /// Its profile.
    pub profile: Box<MigrationProfile>,
    /// The tick of the failure.
    pub tick: u64,
    /// What broke.
    pub violation: Violation,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SEED={} tick={} {} profile={:?} replay: {REPLAY} --seed {}",
            self.seed, self.tick, self.violation, self.profile, self.seed
        )
    }
}

/// Runs one seed with the profile it draws; a panic is a failure of the
/// seed.
pub fn run_seed(seed: u64) -> Result<SeedReport, Failure> {
    let profile = MigrationProfile::draw(seed);
    let run_profile = profile.clone();
    match std::panic::catch_unwind(move || run_seed_with(seed, run_profile)) {
        Ok(result) => result,
        Err(payload) => {
            let detail = raft::sim::swarm::panic_detail(payload.as_ref());
            Err(Failure {
                seed,
                profile: Box::new(profile),
                tick: 0,
                violation: Violation {
                    invariant: "panic",
                    detail,
                },
            })
        }
    }
}

/// Runs one seed with `profile`: the safety phase (faults on, invariants
/// after every step), the liveness phase (faults healed, admins finishing
/// what they started), then the history check.
pub fn run_seed_with(seed: u64, profile: MigrationProfile) -> Result<SeedReport, Failure> {
    let mut world = World::new(seed, profile.clone());
    let fail = |world: &World, violation: Violation| Failure {
        seed,
        profile: Box::new(profile.clone()),
        tick: world.now,
        violation,
    };
    for _ in 0..profile.safety_ticks {
        world
            .tick(true, profile.admin_rate, profile.request_rate)
            .map_err(|v| fail(&world, v))?;
    }
    world.heal();
    let final_reads = settle(&mut world).map_err(|v| fail(&world, v))?;
    let admin_requests = world.check_admins().map_err(|v| fail(&world, v))?;
    let inconclusive =
        checks::check_history(&mut world.clients, final_reads).map_err(|v| fail(&world, v))?;
    Ok(SeedReport {
        seed,
        ticks: world.now,
        operations: world.clients.history().len(),
        admin_requests,
        configs: world.latest_config().map_or(0, |config| config.num.0),
        installs: world.committed.values().map(|group| group.installs).sum(),
        calls: world.mailbox.sent(),
        restores: world.restores(),
        faults: world.faults,
        inconclusive,
        trace_hash: world.trace_hash(),
    })
}

/// Runs the healed world until every client completed a new operation (if
/// any group is left to serve them), the admins are idle and the groups
/// converged on the latest configuration;
/// returns each key's value at its owner.
fn settle(world: &mut World) -> Result<Vec<(String, String)>, Violation> {
    let baseline = world.clients.completed();
    let (mut last_progress, mut last_work) = (0, 0);
    let mut why = String::from("no tick ran");
    for tick in 0..LIVENESS_TICKS {
        let progressed = world
            .clients
            .completed()
            .iter()
            .zip(&baseline)
            .all(|(now, before)| now > before);
        world.tick(false, 0.0, if progressed { 0.0 } else { 0.5 })?;
        match world.latest_config() {
            Some(latest) if world.clusters_settled() && world.admins_idle() => {
                // With every group gone no shard is served: the clients
                // wait, and only the groups must settle (parked shards).
                let served = !latest.groups.is_empty();
                match checks::converged(&world.committed, &latest) {
                    None if progressed || !served => return Ok(final_reads(world, &latest)),
                    None => why = "a client has not completed an operation".into(),
                    Some(reason) => why = reason,
                }
            }
            _ => why = "a cluster has no leader, lags, or an admin request is pending".into(),
        }
        let work = world.work_done();
        if work > last_work {
            (last_progress, last_work) = (tick, work);
        }
        if tick - last_progress > STALL_TICKS {
            break;
        }
    }
    Err(Violation {
        invariant: "liveness",
        detail: format!(
            "{} ticks after healing: {why}; {}",
            world.now,
            checks::describe_groups(&world.committed)
        ),
    })
}

/// Returns each key's value at the group that owns it in `latest` (empty
/// for a missing key); keys of shards nobody owns are not read.
fn final_reads(world: &World, latest: &proto::config::Config) -> Vec<(String, String)> {
    world
        .clients
        .keys()
        .into_iter()
        .filter_map(|key| {
            let shard = clients::shard_of(key.as_bytes());
            let group = latest
                .owner(shard)
                .and_then(|owner| world.committed.get(&owner))?;
            let value = group.machine().read(key.as_bytes()).ok()?;
            let value = value.map_or_else(String::new, |bytes| {
                String::from_utf8_lossy(&bytes).into_owned()
            });
            Some((key, value))
        })
        .collect()
}
