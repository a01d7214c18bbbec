//! One simulated world: the controller group and several replica groups,
//! each a simulated Raft cluster (its own seeded network, crashes and
//! power failures), the calls between them ([`Mailbox`]), the shells of
//! every replica ([`Shell`]), the admins and the key/value clients, all
//! driven by one seed in one thread.
//!
//! One tick: draw faults, let the admins act, take each group's events
//! (committed states, clients), deliver the calls due, let each replica's
//! shell and each client act, step every cluster (Raft's invariants are
//! checked there), then check the migration invariants
//! ([`crate::checks`]).
//!
//! Invariant: same seed and profile, same run (every draw comes from the
//! world's generator or a cluster's, in a fixed order).

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use proto::config::{Config, GroupId};
use raft::core::NodeId;
use raft::sim::app::SimMachine;
use raft::sim::cluster::{Cluster, ClusterConfig, CrashKind};
use raft::sim::invariants::Violation;
use raft::sim::network::NetworkFaults;
use raft::sim::swarm::SwarmClients;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use shardctrler::sim::{AdminClients, CtrlerMachine, SIM_SHARDS};
use shardkv::sim::GroupSimMachine;

use crate::checks::StepChecks;
use crate::clients::{Groups, KvClients};
use crate::committed::Committed;
use crate::mailbox::{CallFaults, Endpoint, Envelope, Mailbox, Payload};
use crate::profile::MigrationProfile;
use crate::shell::{Io, Shell, serve, serve_query};

/// The controller's state is tens of kilobytes: its snapshot chunks are
/// this many times the profile's.
const CTRLER_CHUNK_SCALE: u64 = 16;

/// The whole simulated system.
pub struct World {
    /// The profile the world runs with.
    pub profile: MigrationProfile,
    /// The controller group.
    pub ctrler: Cluster<CtrlerMachine>,
    /// The replica groups.
    pub groups: Groups,
    /// Calls between groups.
    pub mailbox: Mailbox,
    /// The controller's admins (Join, Leave, Move with retries).
    pub admins: AdminClients,
    /// The key/value clients.
    pub clients: KvClients,
    /// Each group's committed state.
    pub committed: BTreeMap<GroupId, Committed>,
    shells: BTreeMap<(GroupId, NodeId), Shell>,
    checks: StepChecks,
    /// The faults drawn so far.
    pub faults: FaultCounts,
    rng: SmallRng,
    /// The current tick.
    pub now: u64,
}

impl World {
    /// Returns the world of `seed` with `profile`, nothing started.
    pub fn new(seed: u64, profile: MigrationProfile) -> World {
        let mut ctrler_config = cluster_config(&profile, profile.ctrler_voters);
        ctrler_config.snapshot_chunk_bytes *= CTRLER_CHUNK_SCALE;
        let ctrler = Cluster::with_machine(
            ctrler_config,
            profile.raft_faults.clone(),
            seed,
            CtrlerMachine::default(),
        );
        let groups: Groups = (1..=profile.groups)
            .map(|gid| {
                let cluster = Cluster::with_machine(
                    cluster_config(&profile, profile.group_voters),
                    profile.raft_faults.clone(),
                    seed ^ gid.wrapping_mul(0x9E37_79B9_7F4A_7C15),
                    GroupSimMachine::new(GroupId(gid), SIM_SHARDS),
                );
                (GroupId(gid), cluster)
            })
            .collect();
        let committed = groups
            .keys()
            .map(|gid| (*gid, Committed::new(*gid)))
            .collect();
        let mailbox = Mailbox::new(CallFaults {
            loss: profile.call_loss,
            duplicate: profile.call_duplicate,
            delay_ticks_max: profile.call_delay_ticks_max,
        });
        World {
            admins: AdminClients::new(profile.admins, profile.groups, 40),
            clients: KvClients::new(
                profile.clients,
                profile.keys,
                profile.read_fraction,
                profile.late_duplicate_rate,
                (profile.group_voters, profile.ctrler_voters),
            ),
            ctrler,
            groups,
            mailbox,
            committed,
            shells: BTreeMap::new(),
            checks: StepChecks::default(),
            faults: FaultCounts::default(),
            rng: SmallRng::seed_from_u64(seed ^ 0x574F_524C_4400_0000),
            now: 0,
            profile,
        }
    }

    /// Runs one tick: faults (if `faults`), admins acting at `admin_rate`,
    /// events, calls, shells, clients starting operations at
    /// `request_rate`, one step of every cluster, then the migration
    /// invariants.
    pub fn tick(
        &mut self,
        faults: bool,
        admin_rate: f64,
        request_rate: f64,
    ) -> Result<(), Violation> {
        if faults {
            self.inject_faults();
        }
        self.admins.drive(&mut self.ctrler, admin_rate, 0.2);
        for (gid, cluster) in &mut self.groups {
            let events = cluster.take_events();
            let committed = self
                .committed
                .get_mut(gid)
                .expect("every group has a committed state");
            committed.observe(&events);
            for write in committed.take_executed() {
                self.checks.ledger.executed(*gid, write)?;
            }
            self.clients.on_events(*gid, cluster, &events);
            for (key, value) in self.clients.take_acked() {
                self.checks.ledger.acknowledged(key, value);
            }
        }
        for envelope in self.mailbox.due(self.now) {
            self.deliver(envelope);
        }
        self.act_shells();
        self.clients.drive(
            &mut self.groups,
            &mut self.mailbox,
            &mut self.rng,
            self.now,
            request_rate,
        );
        self.ctrler
            .step()
            .map_err(|v| within("the controller", v))?;
        for (gid, cluster) in &mut self.groups {
            cluster
                .step()
                .map_err(|v| within(&format!("group {gid}"), v))?;
        }
        self.now += 1;
        self.checks.check(&self.committed, &self.clients)
    }

    /// Delivers one call or reply.
    fn deliver(&mut self, envelope: Envelope) {
        let Envelope { from, to, payload } = envelope;
        let reply = match to {
            Endpoint::Ctrler(id) => serve_query(&self.ctrler, id, payload),
            Endpoint::Client(slot) => {
                self.clients.on_reply(slot, payload);
                None
            }
            Endpoint::Group(gid, id) => {
                let cluster = self.groups.get_mut(&gid).expect("a group of the world");
                match payload {
                    Payload::Fetch { .. } | Payload::Delete { .. } => serve(cluster, id, payload),
                    reply => {
                        let incarnation = cluster.nodes[&id].incarnation;
                        if let Some(shell) = self.shells.get_mut(&(gid, id))
                            && shell.incarnation == incarnation
                            && cluster.core(id).is_some()
                        {
                            let replier = match from {
                                Endpoint::Group(_, replier) | Endpoint::Ctrler(replier) => replier,
                                Endpoint::Client(_) => NodeId(0),
                            };
                            shell.on_reply(
                                cluster,
                                replier,
                                reply,
                                self.profile.group_voters,
                                self.now,
                            );
                        }
                        None
                    }
                }
            }
        };
        if let Some(payload) = reply {
            let envelope = Envelope {
                from: to,
                to: from,
                payload,
            };
            self.mailbox.send(envelope, self.now, &mut self.rng);
        }
    }

    /// Lets every live replica's shell act (a restarted replica gets a new
    /// one).
    fn act_shells(&mut self) {
        let voters = (self.profile.group_voters, self.profile.ctrler_voters);
        for (gid, cluster) in &mut self.groups {
            let ids: Vec<NodeId> = cluster.live_ids();
            for id in ids {
                let incarnation = cluster.nodes[&id].incarnation;
                let shell = self
                    .shells
                    .entry((*gid, id))
                    .or_insert_with(|| Shell::new(*gid, id, incarnation));
                if shell.incarnation != incarnation {
                    *shell = Shell::new(*gid, id, incarnation);
                }
                let mut io = Io {
                    mailbox: &mut self.mailbox,
                    rng: &mut self.rng,
                    now: self.now,
                };
                shell.act(cluster, voters, self.profile.transfer_bytes_max, &mut io);
            }
        }
    }

    /// Draws this tick's faults: partitions inside a group, cuts between
    /// groups, healing, crashes (some of them power failures), power
    /// failures of a whole group, restarts and leadership transfers.
    fn inject_faults(&mut self) {
        let profile = self.profile.clone();
        let sides = profile.groups + 1;
        if self.rng.random_bool(profile.partition_rate) {
            let side = self.rng.random_range(0..sides);
            let draw = self.rng.random();
            self.on_side(side, Fault::Partition(draw));
            self.faults.partitions += 1;
        }
        if self.rng.random_bool(profile.group_cut_rate) {
            let a = GroupId(self.rng.random_range(0..sides));
            let b = GroupId(self.rng.random_range(0..sides));
            self.mailbox.cut(a, b);
            self.faults.cuts += u64::from(a != b);
        }
        if self.rng.random_bool(profile.heal_rate) {
            self.mailbox.heal();
            for side in 0..sides {
                self.on_side(side, Fault::Heal);
            }
        }
        if self.rng.random_bool(profile.crash_rate) {
            let side = self.rng.random_range(0..sides);
            let kind = match self.rng.random_bool(profile.power_failure_share) {
                true => CrashKind::PowerFailure,
                false => CrashKind::Process,
            };
            let draw = self.rng.random();
            self.on_side(side, Fault::Crash(draw, kind));
            self.faults.crashes += 1;
        }
        if self.rng.random_bool(profile.group_crash_rate) {
            let side = self.rng.random_range(1..sides);
            self.on_side(side, Fault::PowerOffAll);
            self.faults.group_power_failures += 1;
        }
        if self.rng.random_bool(profile.restart_rate) {
            let side = self.rng.random_range(0..sides);
            let draw = self.rng.random();
            self.on_side(side, Fault::Restart(draw));
        }
        if self.rng.random_bool(profile.transfer_rate) {
            let side = self.rng.random_range(0..sides);
            let draw = self.rng.random();
            self.on_side(side, Fault::Transfer(draw));
            self.faults.transfers += 1;
        }
    }

    /// Applies `fault` to the controller (side 0) or group `side`.
    fn on_side(&mut self, side: u64, fault: Fault) {
        match side {
            0 => fault.apply(&mut self.ctrler),
            gid => fault.apply(self.groups.get_mut(&GroupId(gid)).expect("a group")),
        }
    }

    /// Heals every partition and cut, turns every fault off and restarts
    /// every replica.
    pub fn heal(&mut self) {
        self.mailbox.heal();
        self.mailbox.faults = CallFaults::default();
        for side in 0..=self.profile.groups {
            self.on_side(side, Fault::Recover);
        }
    }

    /// Returns the latest configuration the controller's leader applied,
    /// if it has a leader.
    pub fn latest_config(&self) -> Option<Config> {
        let leader = self.ctrler.leader()?;
        Some(
            self.ctrler.nodes[&leader]
                .state()
                .machine
                .state()
                .latest()
                .clone(),
        )
    }

    /// Returns whether every cluster has a leader whose commit every member
    /// applied.
    pub fn clusters_settled(&self) -> bool {
        settled(&self.ctrler) && self.groups.values().all(settled)
    }

    /// Returns whether no admin has a request pending.
    pub fn admins_idle(&self) -> bool {
        self.admins.idle()
    }

    /// Returns how far the world got: the applied indexes of every live
    /// replica, summed (progress, for the liveness bound).
    pub fn work_done(&self) -> u64 {
        live_applied(&self.ctrler) + self.groups.values().map(live_applied).sum::<u64>()
    }

    /// Returns the snapshots restored by replicas of every cluster.
    pub fn restores(&self) -> u64 {
        self.ctrler.snapshot_stats.restores_finished
            + self
                .groups
                .values()
                .map(|cluster| cluster.snapshot_stats.restores_finished)
                .sum::<u64>()
    }

    /// Returns a hash of everything the run did (determinism check).
    pub fn trace_hash(&self) -> u64 {
        let mut hasher = DefaultHasher::new();
        self.ctrler.trace_hash().hash(&mut hasher);
        for cluster in self.groups.values() {
            cluster.trace_hash().hash(&mut hasher);
        }
        self.mailbox.sent().hash(&mut hasher);
        format!("{:?}", self.clients.history()).hash(&mut hasher);
        hasher.finish()
    }

    /// Returns the admins' completed requests, their check done on the
    /// controller's converged state.
    pub fn check_admins(&mut self) -> Result<usize, Violation> {
        self.admins.check(&mut self.ctrler)?;
        Ok(self.admins.operations())
    }
}

/// How many faults of each kind a run drew (coverage, for reports).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultCounts {
    /// Partitions inside a group.
    pub partitions: u64,
    /// Cuts between two groups.
    pub cuts: u64,
    /// Crashes of one replica (process or power).
    pub crashes: u64,
    /// Power failures of every replica of a group.
    pub group_power_failures: u64,
    /// Leadership transfers asked.
    pub transfers: u64,
}

impl std::ops::AddAssign for FaultCounts {
    fn add_assign(&mut self, other: FaultCounts) {
        self.partitions += other.partitions;
        self.cuts += other.cuts;
        self.crashes += other.crashes;
        self.group_power_failures += other.group_power_failures;
        self.transfers += other.transfers;
    }
}

/// A fault, applied to a cluster of either machine; the draws pick the
/// replicas.
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// Splits the replicas into two random sides.
    Partition(u64),
    /// Heals the partition.
    Heal,
    /// Crashes one live replica.
    Crash(u64, CrashKind),
    /// Power failure of every live replica.
    PowerOffAll,
    /// Restarts one crashed replica.
    Restart(u64),
    /// Asks the leader to hand over to a replica.
    Transfer(u64),
    /// Heals, turns faults off and restarts every replica.
    Recover,
}

impl Fault {
    fn apply<M: SimMachine>(self, cluster: &mut Cluster<M>) {
        let pick = |draw: u64, ids: &[NodeId]| ids[(draw % ids.len() as u64) as usize];
        match self {
            Fault::Partition(draw) => {
                let all = cluster.all_ids();
                let side = all
                    .iter()
                    .enumerate()
                    .filter(|(at, _)| draw >> (at % 64) & 1 == 1)
                    .map(|(_, id)| *id)
                    .collect();
                cluster.network.partition(&side, &all);
            }
            Fault::Heal => cluster.network.heal(),
            Fault::Crash(draw, kind) => {
                let live = cluster.live_ids();
                if !live.is_empty() {
                    cluster.crash_as(pick(draw, &live), kind);
                }
            }
            Fault::PowerOffAll => {
                for id in cluster.live_ids() {
                    cluster.crash_as(id, CrashKind::PowerFailure);
                }
            }
            Fault::Restart(draw) => {
                let down: Vec<NodeId> = cluster
                    .all_ids()
                    .into_iter()
                    .filter(|id| !cluster.is_live(*id))
                    .collect();
                if !down.is_empty() {
                    cluster.restart(pick(draw, &down));
                }
            }
            Fault::Transfer(draw) => {
                if let Some(leader) = cluster.leader() {
                    let ids: Vec<NodeId> = cluster.all_ids().into_iter().collect();
                    let target = pick(draw, &ids);
                    let _ = cluster
                        .core_mut(leader)
                        .expect("a leader is live")
                        .transfer_leader(target);
                }
            }
            Fault::Recover => {
                cluster.network.heal();
                cluster.network.faults = NetworkFaults::reliable();
                for id in cluster.all_ids() {
                    cluster.restart(id);
                }
            }
        }
    }
}

/// Names the cluster a Raft invariant broke in.
fn within(cluster: &str, violation: Violation) -> Violation {
    Violation {
        invariant: violation.invariant,
        detail: format!("in {cluster}: {}", violation.detail),
    }
}

/// Returns the applied indexes of `cluster`'s live replicas, summed.
fn live_applied<M: SimMachine>(cluster: &Cluster<M>) -> u64 {
    cluster
        .live_ids()
        .into_iter()
        .map(|id| cluster.nodes[&id].state().applied.0)
        .sum()
}

/// Returns whether `cluster` has a leader whose commit every member
/// applied.
fn settled<M: SimMachine>(cluster: &Cluster<M>) -> bool {
    let Some(leader) = cluster.leader() else {
        return false;
    };
    let status = cluster.core(leader).expect("a leader is live").status();
    status.membership.members().all(|member| {
        cluster
            .core(member)
            .is_some_and(|core| core.status().applied >= status.commit)
    })
}

/// Returns the configuration of a cluster of `voters` under `profile`.
fn cluster_config(profile: &MigrationProfile, voters: u64) -> ClusterConfig {
    let mut config = ClusterConfig::new(voters);
    config.compaction_interval = profile.compaction_interval;
    config.snapshot_chunk_bytes = profile.snapshot_chunk_bytes;
    config
}
