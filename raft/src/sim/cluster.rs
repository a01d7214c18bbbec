//! A simulated cluster: Raft cores over [`MemStorage`] "disks", each with
//! its application ([`AppStore`]) in the same database, a seeded
//! [`Network`], virtual time in ticks, crash and restart, all in one
//! thread. Each node's Ready is handled exactly per the contract of
//! `core::ready` (restore chunks, persist, finish the restore, send,
//! apply, serve snapshot reads, advance), with optional crashes before
//! and after the persist, at each step of a follower's restore, and (for
//! the Figure 8 profiles) right after a node takes office or a leader's
//! commit index advances; invariants are checked as the Readies are
//! handled, and after each one on the node's whole state (see
//! [`crate::sim::invariants`]). The application side of a Ready (restore,
//! apply, compaction, snapshot reads) lives in `cluster/application.rs`.
//!
//! Invariants:
//! - Everything is driven by `seed`: same seed and same calls, same run
//!   (checked by a trace hash).
//! - A process crash loses the core, the unsent messages, the pinned
//!   snapshot views and the pending snapshot reads; the disk and the
//!   application's state survive it. A power failure also loses the log's
//!   and the application's writes made after the node's last synced write.
//! - A node restarts with `Config.applied` and `Config.restoring` read
//!   from its application's state, never from the log.

mod application;

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{DefaultHasher, Hash, Hasher};

use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::core::storage::Storage;
use crate::core::{
    ConfChange, Config, Entry, EntryKind, LogIndex, Membership, Message, MessageBody, Node, NodeId,
    ProposalId, ReadState, Ready, Role, Term,
};
use crate::sim::app::AppStore;
use crate::sim::app::{AppState, SimMachine};
use crate::sim::invariants::commit_safety::ElectionView;
use crate::sim::invariants::{Invariants, Violation};
use crate::sim::kv::KvState;
use crate::sim::network::{Network, NetworkFaults};
use crate::sim::snapshot_reads::SnapshotReads;
use crate::storage::MemStorage;

/// More messages in flight than this means the nodes feed each other
/// messages without bound (a livelock), reported instead of hanging.
const MESSAGES_IN_FLIGHT_MAX: usize = 100_000;

/// The shape and tunables of a simulated cluster.
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterConfig {
    /// Initial voters, with ids 1..=voters.
    pub voters: u64,
    /// Election timeout base, in ticks.
    pub election_ticks: u32,
    /// Heartbeat interval, in ticks.
    pub heartbeat_ticks: u32,
    /// Whether PreVote is on.
    pub pre_vote: bool,
    /// Whether CheckQuorum is on.
    pub check_quorum: bool,
    /// Compact the log once this many entries were applied past its
    /// compacted prefix (0: never).
    pub compaction_interval: u64,
    /// Compaction keeps up to this many applied entries in the log (drawn
    /// per compaction), but never drops the last membership change
    /// applied.
    pub compaction_tail_max: u64,
    /// Snapshot chunk size, in bytes (at least one whole record).
    pub snapshot_chunk_bytes: u64,
    /// Snapshot chunks in flight to one follower.
    pub snapshot_chunks_in_flight: usize,
    /// Leader ticks without progress before a snapshot transfer resumes.
    pub snapshot_stall_ticks: u32,
    /// A leader answers each snapshot read 0 to this many ticks late.
    pub snapshot_read_delay_ticks_max: u64,
    /// Probability that a snapshot read fails.
    pub snapshot_read_fail: f64,
    /// Probability that a leader asked to pin a new view for a follower
    /// keeps reading the one it pinned earlier (a stale, older state).
    pub snapshot_read_stale: f64,
    /// Probability of a crash at each step of a follower's restore:
    /// chunks written but the snapshot not installed, installed but the
    /// restore not finished, finished but nothing sent.
    pub crash_in_restore: f64,
    /// Entry bytes per append message.
    pub message_bytes_max: u64,
    /// Append messages in flight per follower.
    pub inflight_messages_max: usize,
    /// Entry bytes in flight per follower.
    pub inflight_bytes_max: u64,
    /// Probability of a crash at each crash point of a Ready.
    pub crash_in_ready: f64,
    /// Probability that a leader crashes right after a Ready in which its
    /// commit index advanced (opens the Figure 8 window: the entries it
    /// was still replicating sit on a minority).
    pub crash_leader_after_commit: f64,
    /// Probability that a node crashes right after the Ready in which it
    /// became leader (its own entry may have reached no one: Figure 8's
    /// leaders of (b) and (c)).
    pub crash_new_leader: f64,
}

impl ClusterConfig {
    /// Returns a fault-free configuration of `voters` nodes.
    pub fn new(voters: u64) -> ClusterConfig {
        ClusterConfig {
            voters,
            election_ticks: 10,
            heartbeat_ticks: 2,
            pre_vote: true,
            check_quorum: true,
            compaction_interval: 0,
            compaction_tail_max: 0,
            snapshot_chunk_bytes: 64,
            snapshot_chunks_in_flight: 4,
            snapshot_stall_ticks: 20,
            snapshot_read_delay_ticks_max: 0,
            snapshot_read_fail: 0.0,
            snapshot_read_stale: 0.0,
            crash_in_restore: 0.0,
            message_bytes_max: 4096,
            inflight_messages_max: 16,
            inflight_bytes_max: u64::MAX,
            crash_in_ready: 0.0,
            crash_leader_after_commit: 0.0,
            crash_new_leader: 0.0,
        }
    }
}

/// Something a node did that clients may be waiting for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeEvent {
    /// `node` applied `entry`.
    Applied {
        /// The node.
        node: NodeId,
        /// The entry.
        entry: Entry,
    },
    /// `node` confirmed a ReadIndex request.
    ReadReady {
        /// The node.
        node: NodeId,
        /// The read.
        read: ReadState,
    },
}

/// What the snapshot machinery did in a run: how often each path of
/// compaction, snapshot reads and restores ran (coverage, for reports).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SnapshotStats {
    /// Log compactions.
    pub compactions: u64,
    /// Views a leader pinned for a follower.
    pub views_pinned: u64,
    /// Requests to pin a new view answered from a stale one.
    pub stale_views: u64,
    /// Snapshot reads answered with a failure.
    pub reads_failed: u64,
    /// Snapshot chunks read and handed to the core.
    pub chunks_read: u64,
    /// Restores begun by a follower's application.
    pub restores_begun: u64,
    /// Chunks written by a follower's application (last ones included).
    pub chunks_restored: u64,
    /// Restores finished.
    pub restores_finished: u64,
    /// Crashes at a step of a restore.
    pub crashes_in_restore: u64,
    /// Restarts of a node whose application was restoring.
    pub restarts_restoring: u64,
}

impl std::ops::AddAssign for SnapshotStats {
    fn add_assign(&mut self, other: SnapshotStats) {
        self.compactions += other.compactions;
        self.views_pinned += other.views_pinned;
        self.stale_views += other.stale_views;
        self.reads_failed += other.reads_failed;
        self.chunks_read += other.chunks_read;
        self.restores_begun += other.restores_begun;
        self.chunks_restored += other.chunks_restored;
        self.restores_finished += other.restores_finished;
        self.crashes_in_restore += other.crashes_in_restore;
        self.restarts_restoring += other.restarts_restoring;
    }
}

/// How a node goes down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashKind {
    /// The process dies: the disk and the application's database keep
    /// every write.
    Process,
    /// The machine loses power: the writes after the last synced one are
    /// lost too.
    PowerFailure,
}

/// A point of a follower's restore (the Ready contract's steps 1 to 4)
/// where a crash can be armed ([`Cluster::arm_crash`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashPoint {
    /// The Ready's chunks were written (step 1), the snapshot not yet
    /// installed by the storage (step 2).
    RestoreWritten,
    /// The storage installed the snapshot (step 2), the application has
    /// not finished the restore (step 3).
    SnapshotInstalled,
    /// The restore finished (step 3), no message was sent (step 4).
    Restored,
}

/// One simulated server running application `M`.
pub struct SimNode<M> {
    /// The running core, or `None` while crashed.
    node: Option<Node<MemStorage>>,
    /// The disk while crashed.
    disk: Option<MemStorage>,
    /// The application, in the same database as the log: it survives a
    /// process crash.
    app: AppStore<M>,
    /// The leader's pinned views and pending snapshot reads (lost on
    /// crash).
    snapshot_reads: SnapshotReads<M>,
    /// The index of the last membership change the application applied
    /// (or an index at or after it): compaction never drops it, so the
    /// membership it records is the one in force at its index.
    last_conf_change: LogIndex,
    /// Grows on each restart; lets clients notice a crash.
    pub incarnation: u64,
    /// Removed from the group and shut down for good.
    pub decommissioned: bool,
}

impl<M: SimMachine> SimNode<M> {
    /// Returns the running core, if up.
    pub fn core(&self) -> Option<&Node<MemStorage>> {
        self.node.as_ref()
    }

    /// Returns the application's state (it survives crashes).
    pub fn state(&self) -> &AppState<M> {
        self.app.state()
    }

    /// Returns the application's state as a power failure would leave it.
    pub fn durable_state(&self) -> &AppState<M> {
        self.app.durable_state()
    }

    /// Returns the storage, running or not.
    pub fn storage(&self) -> Option<&MemStorage> {
        self.node.as_ref().map(Node::storage).or(self.disk.as_ref())
    }

    /// Returns how many snapshot views the node holds pinned.
    pub fn pinned_views(&self) -> usize {
        self.snapshot_reads.pinned()
    }
}

/// A whole simulated group replicating application `M` (by default the
/// register map of [`crate::sim::kv`]).
pub struct Cluster<M: SimMachine = KvState> {
    /// The configuration.
    pub config: ClusterConfig,
    /// The nodes, by id.
    pub nodes: BTreeMap<NodeId, SimNode<M>>,
    /// The network.
    pub network: Network,
    /// The current tick.
    pub now: u64,
    /// The checkers.
    pub invariants: Invariants,
    /// What the snapshot machinery did so far.
    pub snapshot_stats: SnapshotStats,
    /// Events since the last `take_events`.
    events: Vec<NodeEvent>,
    /// Removed nodes still running, with the index of their removal: an
    /// operator shuts one down once every other node applied it.
    removals: BTreeMap<NodeId, LogIndex>,
    /// A violation found outside a step (a node restarting without a vote
    /// it acted on, or behind its log), reported by the next step.
    pending_violation: Option<Violation>,
    /// Crashes armed by scenarios, one per node, fired once.
    armed_crashes: BTreeMap<NodeId, (CrashPoint, CrashKind)>,
    rng: SmallRng,
    seed: u64,
    trace: DefaultHasher,
    /// The machine every node's application starts from.
    blank: M,
}

impl<M: SimMachine + Default> Cluster<M> {
    /// Returns a cluster of `config.voters` fresh voters driven by `seed`,
    /// each starting from `M::default()`.
    pub fn new(config: ClusterConfig, faults: NetworkFaults, seed: u64) -> Cluster<M> {
        Cluster::with_machine(config, faults, seed, M::default())
    }
}

impl<M: SimMachine> Cluster<M> {
    /// Returns a cluster of `config.voters` fresh voters driven by `seed`,
    /// each node's application starting from `blank`.
    pub fn with_machine(
        config: ClusterConfig,
        faults: NetworkFaults,
        seed: u64,
        blank: M,
    ) -> Cluster<M> {
        let membership = Membership::with_voters((1..=config.voters).map(NodeId));
        let mut cluster = Cluster {
            nodes: BTreeMap::new(),
            network: Network::new(faults),
            now: 0,
            invariants: Invariants::new(blank.clone()),
            snapshot_stats: SnapshotStats::default(),
            events: Vec::new(),
            removals: BTreeMap::new(),
            pending_violation: None,
            armed_crashes: BTreeMap::new(),
            rng: SmallRng::seed_from_u64(seed),
            seed,
            trace: DefaultHasher::new(),
            config,
            blank,
        };
        for id in 1..=cluster.config.voters {
            cluster.add_node(NodeId(id), MemStorage::new(membership.clone()));
        }
        cluster
    }

    /// Creates a running node with `storage` (a joining node starts with an
    /// empty membership).
    pub fn add_node(&mut self, id: NodeId, storage: MemStorage) {
        self.nodes.insert(
            id,
            SimNode {
                node: None,
                disk: Some(storage),
                app: AppStore::new(self.blank.clone()),
                snapshot_reads: SnapshotReads::default(),
                last_conf_change: LogIndex(0),
                incarnation: 0,
                decommissioned: false,
            },
        );
        self.start(id);
    }

    fn node_config(&self, id: NodeId) -> Config {
        let mut config = Config::new(id);
        config.election_ticks = self.config.election_ticks;
        config.heartbeat_ticks = self.config.heartbeat_ticks;
        config.pre_vote = self.config.pre_vote;
        config.check_quorum = self.config.check_quorum;
        config.snapshot_chunk_bytes = self.config.snapshot_chunk_bytes;
        config.snapshot_chunks_in_flight = self.config.snapshot_chunks_in_flight;
        config.snapshot_stall_ticks = self.config.snapshot_stall_ticks;
        config.message_bytes_max = self.config.message_bytes_max;
        config.inflight_messages_max = self.config.inflight_messages_max;
        config.inflight_bytes_max = self.config.inflight_bytes_max;
        config.promote_lag_entries_max = 50;
        config
    }

    /// Starts `id` from its disk and its application's state, checking
    /// that they fit together (violations are reported by the next step).
    fn start(&mut self, id: NodeId) {
        let mut config = self.node_config(id);
        let seed = self.seed ^ id.0.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ self.now.rotate_left(32);
        let sim = self.nodes.get_mut(&id).expect("node exists");
        let disk = sim.disk.take().expect("a stopped node has its disk");
        let votes = self.invariants.check_restart_votes(id, disk.hard_state());
        self.invariants.commit_advanced(id, LogIndex(0));
        let compacted = disk.snapshot_meta();
        let state = sim.app.state();
        if state.restoring.is_none()
            && state.applied == LogIndex(0)
            && compacted.index == LogIndex(1)
        {
            // The bootstrap prefix carries no application data: a fresh
            // application takes the empty state at its index.
            sim.app.bootstrap(compacted.index);
        }
        let state = sim.app.state();
        let (applied, restoring) = (state.applied, state.restoring.clone());
        self.snapshot_stats.restarts_restoring += u64::from(restoring.is_some());
        let covers = self.invariants.check_state_covers_log(
            id,
            applied,
            restoring.is_some(),
            compacted.index,
            "restarted",
        );
        // A partial restore is no state at any index: only a whole one is
        // checked against the reference.
        let digest = match restoring {
            Some(_) => Ok(()),
            None => {
                self.invariants
                    .check_state(id, applied, state.machine.digest(), "restarted with")
            }
        };
        config.applied = applied;
        config.restoring = restoring.clone();
        sim.last_conf_change = applied;
        sim.incarnation += 1;
        let node = Node::new(config, disk, seed).expect("simulator configuration is valid");
        let status = node.status();
        sim.node = Some(node);
        let mark = self.invariants.check_restore_mark(
            id,
            (status.restoring, status.applied),
            (restoring.is_some(), applied),
        );
        self.invariants.observe_restart(id, applied);
        for result in [votes, covers, mark, digest] {
            self.defer(result);
        }
    }

    /// Keeps the first violation found outside a step for the next step.
    fn defer(&mut self, result: Result<(), Violation>) {
        if let Err(violation) = result {
            self.pending_violation.get_or_insert(violation);
        }
    }

    /// Returns the ids of running nodes.
    pub fn live_ids(&self) -> Vec<NodeId> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.node.is_some())
            .map(|(&id, _)| id)
            .collect()
    }

    /// Returns every node id ever created.
    pub fn all_ids(&self) -> BTreeSet<NodeId> {
        self.nodes.keys().copied().collect()
    }

    /// Returns whether `id` is running.
    pub fn is_live(&self, id: NodeId) -> bool {
        self.nodes.get(&id).is_some_and(|n| n.node.is_some())
    }

    /// Returns the running core of `id`.
    pub fn core(&self, id: NodeId) -> Option<&Node<MemStorage>> {
        self.nodes.get(&id).and_then(|n| n.node.as_ref())
    }

    /// Returns the running core of `id`, mutably.
    pub fn core_mut(&mut self, id: NodeId) -> Option<&mut Node<MemStorage>> {
        self.nodes.get_mut(&id).and_then(|n| n.node.as_mut())
    }

    /// Returns the live leader of the highest term, if any.
    pub fn leader(&self) -> Option<NodeId> {
        self.nodes
            .iter()
            .filter_map(|(&id, n)| n.node.as_ref().map(|core| (id, core.status())))
            .filter(|(_, status)| status.role == Role::Leader)
            .max_by_key(|(_, status)| status.term)
            .map(|(id, _)| id)
    }

    /// Returns the highest term of any live node.
    pub fn max_term(&self) -> Term {
        self.live_ids()
            .iter()
            .filter_map(|&id| self.core(id))
            .map(|c| c.status().term)
            .max()
            .unwrap_or_default()
    }

    /// Crashes `id`; half the crashes are power failures (see
    /// [`Cluster::crash_as`]).
    pub fn crash(&mut self, id: NodeId) {
        let kind = if self.rng.random_bool(0.5) {
            CrashKind::PowerFailure
        } else {
            CrashKind::Process
        };
        self.crash_as(id, kind);
    }

    /// Crashes `id`: its core, unsent messages, pinned views and pending
    /// snapshot reads are lost; its disk and application keep what was
    /// written, except, on a power failure, what was written after the
    /// last synced write.
    pub fn crash_as(&mut self, id: NodeId, kind: CrashKind) {
        if let Some(sim) = self.nodes.get_mut(&id)
            && let Some(node) = sim.node.take()
        {
            let mut disk = node.into_storage();
            if kind == CrashKind::PowerFailure {
                disk.lose_unsynced();
                sim.app.lose_unsynced();
            }
            sim.disk = Some(disk);
            sim.snapshot_reads.clear();
        }
    }

    /// Arms a crash of `id` the next time its restore reaches `point`
    /// (one crash per node at a time; arming again replaces it).
    pub fn arm_crash(&mut self, id: NodeId, point: CrashPoint, kind: CrashKind) {
        self.armed_crashes.insert(id, (point, kind));
    }

    /// Returns whether a crash armed for `id` has yet to fire.
    pub fn crash_armed(&self, id: NodeId) -> bool {
        self.armed_crashes.contains_key(&id)
    }

    /// Crashes `id` if a crash is armed at `point` or the profile's
    /// `crash_in_restore` draws one; returns whether it crashed.
    fn crash_in_restore(&mut self, id: NodeId, point: CrashPoint) -> bool {
        let armed = self
            .armed_crashes
            .get(&id)
            .is_some_and(|&(armed, _)| armed == point);
        if armed {
            let (_, kind) = self.armed_crashes.remove(&id).expect("checked");
            self.crash_as(id, kind);
        } else if self.roll(self.config.crash_in_restore) {
            self.crash(id);
        } else {
            return false;
        }
        self.snapshot_stats.crashes_in_restore += 1;
        true
    }

    /// Restarts a crashed node from its disk.
    pub fn restart(&mut self, id: NodeId) {
        let restartable = self
            .nodes
            .get(&id)
            .is_some_and(|n| n.node.is_none() && !n.decommissioned);
        if restartable {
            self.start(id);
        }
    }

    /// Shuts `id` down for good (after its removal from the group).
    pub fn decommission(&mut self, id: NodeId) {
        self.crash(id);
        if let Some(sim) = self.nodes.get_mut(&id) {
            sim.decommissioned = true;
        }
    }

    /// Takes the events since the last call.
    pub fn take_events(&mut self) -> Vec<NodeEvent> {
        std::mem::take(&mut self.events)
    }

    /// Returns a hash of everything that happened so far (determinism
    /// check).
    pub fn trace_hash(&self) -> u64 {
        self.trace.clone().finish()
    }

    /// Advances one tick: ticks every node, delivers due messages and
    /// handles every Ready. Returns the first violation seen.
    pub fn step(&mut self) -> Result<(), Violation> {
        if let Some(violation) = self.pending_violation.take() {
            return Err(violation);
        }
        self.now += 1;
        for id in self.live_ids() {
            if let Some(core) = self.core_mut(id) {
                core.tick();
            }
            self.process_ready(id)?;
        }
        if self.network.in_flight() > MESSAGES_IN_FLIGHT_MAX {
            return Err(Violation {
                invariant: "message_storm",
                detail: format!("{} messages in flight", self.network.in_flight()),
            });
        }
        while let Some(message) = self.network.next_due(self.now) {
            let to = message.to;
            if self.is_live(to) {
                (message.from, message.to, message.term).hash(&mut self.trace);
                tracing::debug!(
                    tick = self.now,
                    from = message.from.0,
                    to = message.to.0,
                    message = ?message.body,
                    "deliver"
                );
                self.core_mut(to).expect("live").step(message);
                self.process_ready(to)?;
            }
        }
        self.shut_down_removed();
        Ok(())
    }

    /// Decommissions each removed node once every other node that could
    /// still need its vote has applied its removal: every node in service
    /// that is a voter in its own view is up and applied it, unless it is
    /// restoring a snapshot. Learners, nodes that never joined and
    /// restoring nodes campaign for no one (a learner promoted later
    /// applies the removal before its promotion; a restoring node resumes
    /// from a current leader's state). Waiting for a restoring voter could
    /// wait forever: without PreVote and CheckQuorum the removed node's
    /// campaigns depose each leader, and each new leader's snapshot starts
    /// the restore over.
    fn shut_down_removed(&mut self) {
        let done: Vec<NodeId> = self
            .removals
            .iter()
            .filter(|&(&removed, &index)| {
                self.nodes
                    .iter()
                    .filter(|&(&id, n)| id != removed && !n.decommissioned)
                    .all(|(&id, n)| match n.node.as_ref().map(Node::status) {
                        Some(status) => {
                            !status.membership.voters.contains(&id)
                                || status.restoring
                                || status.applied >= index
                        }
                        None => false,
                    })
            })
            .map(|(&removed, _)| removed)
            .collect();
        for removed in done {
            self.removals.remove(&removed);
            self.decommission(removed);
        }
    }

    /// Returns one line per node: role, term, commit and applied indexes,
    /// the restore its application has under way, log and membership.
    pub fn describe(&self) -> String {
        let lines: Vec<String> = self
            .nodes
            .iter()
            .map(|(id, sim)| match sim.core() {
                Some(core) => {
                    let s = core.status();
                    format!(
                        "[{id}: {:?} term {} leader {:?} commit {} applied {} restoring {:?} log {}..={} voters {:?} learners {:?}]",
                        s.role, s.term, s.leader, s.commit, s.applied,
                        sim.state().restoring.as_ref().map(|point| (point.index, point.term)),
                        s.first_index, s.last_index, s.membership.voters, s.membership.learners
                    )
                }
                None if sim.decommissioned => format!("[{id}: decommissioned]"),
                None => format!("[{id}: down]"),
            })
            .collect();
        lines.join(" ")
    }

    /// Runs `step` until `condition` holds or `ticks_max` ticks pass.
    pub fn run_until(
        &mut self,
        ticks_max: u64,
        mut condition: impl FnMut(&Cluster<M>) -> bool,
    ) -> Result<bool, Violation> {
        for _ in 0..ticks_max {
            if condition(self) {
                return Ok(true);
            }
            self.step()?;
        }
        Ok(condition(self))
    }

    /// Proposes `data` at `id`.
    pub fn propose(&mut self, id: NodeId, data: Bytes) -> Result<ProposalId, crate::core::Error> {
        let core = self
            .core_mut(id)
            .ok_or(crate::core::Error::NotLeader { leader_hint: None })?;
        core.propose(data)
    }

    /// Proposes a membership change at `id`; a learner being added gets a
    /// fresh node with an empty disk.
    pub fn propose_conf_change(
        &mut self,
        id: NodeId,
        change: ConfChange,
    ) -> Result<ProposalId, crate::core::Error> {
        if let ConfChange::AddLearner(new) = change
            && !self.nodes.contains_key(&new)
        {
            self.add_node(new, MemStorage::new(Membership::default()));
        }
        let core = self
            .core_mut(id)
            .ok_or(crate::core::Error::NotLeader { leader_hint: None })?;
        core.propose_conf_change(change)
    }

    /// Handles every Ready of `id` until it has none (or crashes).
    pub fn process_ready(&mut self, id: NodeId) -> Result<(), Violation> {
        loop {
            self.serve_snapshot_reads(id)?;
            let Some(core) = self.core_mut(id) else {
                return Ok(());
            };
            let Some(ready) = core.ready() else {
                return Ok(());
            };
            if !self.handle_ready(id, ready)? {
                return Ok(());
            }
        }
    }

    /// Handles one Ready per the contract; returns false if the node
    /// crashed midway.
    fn handle_ready(&mut self, id: NodeId, mut ready: Ready) -> Result<bool, Violation> {
        if self.roll_crash() {
            self.crash(id);
            return Ok(false);
        }
        self.check_ready(id, &ready)?;
        for message in ready.take_early_messages() {
            self.send(message)?;
        }
        if self.roll_crash() {
            self.crash(id);
            return Ok(false);
        }
        if !self.persist_and_restore(id, &mut ready)? {
            return Ok(false);
        }
        for message in &ready.messages {
            self.send(message.clone())?;
        }
        self.apply(id, &ready)?;
        self.queue_snapshot_requests(id, std::mem::take(&mut ready.snapshot_requests));
        let reads = ready
            .read_states
            .iter()
            .map(|&read| NodeEvent::ReadReady { node: id, read });
        self.events.extend(reads);
        let core = self.core_mut(id).expect("live");
        core.advance();
        self.maybe_compact(id)?;
        let commit_advanced = self.check_node(id)?;
        let took_office = ready
            .soft_state
            .is_some_and(|soft| soft.role == Role::Leader);
        let crash = (commit_advanced && self.roll(self.config.crash_leader_after_commit))
            || (took_office && self.roll(self.config.crash_new_leader));
        if crash {
            self.crash(id);
            return Ok(false);
        }
        Ok(true)
    }

    /// Steps 1 to 3 of the contract: hands the restore chunks but a last
    /// one to the application, persists, then finishes the restore with
    /// the last chunk; with a crash point after each. Returns false if the
    /// node crashed.
    fn persist_and_restore(&mut self, id: NodeId, ready: &mut Ready) -> Result<bool, Violation> {
        let restoring = !ready.restore_chunks.is_empty();
        let finishing = self.restore_chunks(id, std::mem::take(&mut ready.restore_chunks))?;
        if restoring && self.crash_in_restore(id, CrashPoint::RestoreWritten) {
            return Ok(false);
        }
        self.persist(id, ready)?;
        if self.roll_crash() {
            self.crash(id);
            return Ok(false);
        }
        let Some(last) = finishing else {
            return Ok(true);
        };
        if self.crash_in_restore(id, CrashPoint::SnapshotInstalled) {
            return Ok(false);
        }
        self.finish_restore(id, last)?;
        Ok(!self.crash_in_restore(id, CrashPoint::Restored))
    }

    /// Step 2: persists the Ready's batch; a synced write also makes the
    /// application's writes so far durable (one database).
    fn persist(&mut self, id: NodeId, ready: &Ready) -> Result<(), Violation> {
        let sim = self.nodes.get_mut(&id).expect("live");
        let core = sim.node.as_mut().expect("live");
        let previous_term = ready
            .entries
            .first()
            .and_then(|e| core.term_at(e.index.prev()))
            .unwrap_or_default();
        let batch = ready.persist_batch();
        let synced = batch.must_sync(&core.storage().hard_state());
        core.storage_mut()
            .persist(&batch)
            .expect("memory storage accepts the core's batches");
        if synced {
            sim.app.sync();
        }
        let compacted = core.storage().snapshot_meta().index;
        let state = sim.app.state();
        self.invariants.check_state_covers_log(
            id,
            state.applied,
            state.restoring.is_some(),
            compacted,
            "persisted a Ready",
        )?;
        self.invariants
            .observe_persisted(id, &ready.entries, previous_term)
    }

    /// Hands `message` to the network, recording the vote it acts on, if
    /// any.
    fn send(&mut self, message: Message) -> Result<(), Violation> {
        match message.body {
            MessageBody::RequestVote {
                pre_vote: false, ..
            } => {
                self.invariants
                    .observe_vote(message.from, message.term, message.from)?;
            }
            MessageBody::VoteResponse {
                pre_vote: false,
                granted: true,
                ..
            } => {
                self.invariants
                    .observe_vote(message.from, message.term, message.to)?;
            }
            _ => {}
        }
        self.network.send(message, self.now, &mut self.rng);
        Ok(())
    }

    /// Checks the invariants on `id`'s whole state after a Ready: what it
    /// counts committed, and if it leads, election safety, leader
    /// completeness and, when its commit index advanced, commit safety.
    /// Returns whether it leads and its commit index advanced.
    fn check_node(&mut self, id: NodeId) -> Result<bool, Violation> {
        let sim = &self.nodes[&id];
        let core = sim.node.as_ref().expect("live");
        let status = core.status();
        let state = sim.app.state();
        self.invariants.check_restore_mark(
            id,
            (status.restoring, status.applied),
            (state.restoring.is_some(), state.applied),
        )?;
        self.invariants.check_state_covers_log(
            id,
            state.applied,
            state.restoring.is_some(),
            core.storage().snapshot_meta().index,
            "handled a Ready",
        )?;
        self.invariants
            .observe_commit(id, status.term, status.commit, |index| core.term_at(index))?;
        let advanced = self.invariants.commit_advanced(id, status.commit);
        if status.role != Role::Leader {
            return Ok(false);
        }
        self.invariants
            .check_leading(id, &status, |index| core.term_at(index))?;
        if advanced && let Some(entry_term) = core.term_at(status.commit) {
            let views = self.election_views(status.commit, entry_term);
            self.invariants.check_commit_safe(
                id,
                status.term,
                status.commit,
                entry_term,
                &status.membership.voters,
                &views,
            )?;
        }
        Ok(advanced)
    }

    /// Returns what every node would bring to an election, read from its
    /// disk, given the entry (`index`, `term`) being committed.
    fn election_views(&self, index: LogIndex, term: Term) -> Vec<ElectionView> {
        self.nodes
            .iter()
            .filter_map(|(&id, sim)| {
                let storage = sim.storage()?;
                let snapshot = storage.snapshot_meta();
                let last_index = storage.last_index();
                let last_term = storage.term(last_index).unwrap_or(snapshot.term);
                let holds = index <= snapshot.index
                    || (index <= last_index && storage.term(index).is_ok_and(|t| t == term));
                let voters = if holds || sim.decommissioned {
                    BTreeSet::new()
                } else {
                    let (membership, from, to) = match &sim.node {
                        Some(core) => {
                            let status = core.status();
                            (status.membership, status.applied, status.commit)
                        }
                        None => (
                            snapshot.membership.clone(),
                            snapshot.index,
                            storage.hard_state().commit.min(last_index),
                        ),
                    };
                    membership_after(storage, membership, from, to).voters
                };
                Some(ElectionView {
                    id,
                    last: (last_term, last_index),
                    holds,
                    runs: !sim.decommissioned,
                    voters,
                })
            })
            .collect()
    }

    fn roll_crash(&mut self) -> bool {
        self.roll(self.config.crash_in_ready)
    }

    /// Returns true with `probability`, drawing nothing if it is zero.
    fn roll(&mut self, probability: f64) -> bool {
        probability > 0.0 && self.rng.random_bool(probability)
    }

    /// Checks the role-related invariants before a Ready is persisted,
    /// and that a snapshot to install comes with the last chunk of its
    /// restore (and only then).
    fn check_ready(&mut self, id: NodeId, ready: &Ready) -> Result<(), Violation> {
        check_restore_chunks(id, ready)?;
        let core = self.nodes[&id].node.as_ref().expect("live");
        let status = core.status();
        if status.role != Role::Leader {
            return Ok(());
        }
        let durable_last = core.storage().last_index();
        self.invariants
            .check_leader_appends(id, &ready.entries, durable_last)?;
        if ready
            .soft_state
            .is_some_and(|soft| soft.role == Role::Leader)
        {
            self.invariants
                .check_leading(id, &status, |index| core.term_at(index))?;
        }
        Ok(())
    }

    /// Returns a random node that has not been decommissioned.
    pub fn random_node(&mut self) -> NodeId {
        let candidates: Vec<NodeId> = self
            .nodes
            .iter()
            .filter(|(_, n)| !n.decommissioned)
            .map(|(&id, _)| id)
            .collect();
        candidates[self.rng.random_range(0..candidates.len())]
    }

    /// Draws from the cluster's seeded randomness (for fault schedules).
    pub fn rng(&mut self) -> &mut SmallRng {
        &mut self.rng
    }

    /// Returns whether every live member applied up to `index`.
    pub fn applied_everywhere(&self, index: LogIndex) -> bool {
        self.nodes
            .values()
            .filter_map(|n| n.node.as_ref())
            .filter(|core| core.status().membership.contains(core.status().id))
            .all(|core| core.status().applied >= index)
    }
}

/// Returns `membership` after the membership changes among `storage`'s
/// entries in `(from, to]`, as the core applies them
/// (`apply_conf_change`): the membership a node counts once it applied
/// everything it knows committed.
fn membership_after(
    storage: &MemStorage,
    mut membership: Membership,
    from: LogIndex,
    to: LogIndex,
) -> Membership {
    let to = to.min(storage.last_index());
    if from >= to {
        return membership;
    }
    let entries = storage
        .entries(from.next(), to.next(), u64::MAX)
        .unwrap_or_default();
    let changes = entries
        .iter()
        .filter(|entry| entry.kind == EntryKind::ConfChange)
        .filter_map(|entry| ConfChange::decode(&entry.data));
    for change in changes {
        match change {
            ConfChange::AddLearner(node) => {
                if !membership.contains(node) {
                    membership.learners.insert(node);
                }
            }
            ConfChange::PromoteLearner(node) => {
                if membership.learners.remove(&node) {
                    membership.voters.insert(node);
                }
            }
            ConfChange::RemoveNode(node) => {
                membership.voters.remove(&node);
                membership.learners.remove(&node);
            }
        }
    }
    membership
}

/// Checks the shape the contract gives a Ready's restore: only its final
/// chunk may be a last one, and `snapshot` is set exactly when it is,
/// describing that chunk's snapshot.
fn check_restore_chunks(id: NodeId, ready: &Ready) -> Result<(), Violation> {
    let chunks = &ready.restore_chunks;
    let finishing = chunks.last().filter(|chunk| chunk.last);
    let early_last = chunks.iter().rev().skip(1).any(|chunk| chunk.last);
    let matches = match (finishing, &ready.snapshot) {
        (Some(chunk), Some(meta)) => chunk.meta == *meta,
        (None, None) => true,
        _ => false,
    };
    if matches && !early_last {
        return Ok(());
    }
    Err(Violation {
        invariant: "ready_contract",
        detail: format!(
            "node {id}: a Ready restores {} chunks (last flags {:?}) with snapshot {:?}",
            chunks.len(),
            chunks.iter().map(|chunk| chunk.last).collect::<Vec<_>>(),
            ready.snapshot
        ),
    })
}
