//! A simulated cluster: Raft cores over [`MemStorage`] "disks", a seeded
//! [`Network`], virtual time in ticks, crash and restart, all in one
//! thread. Each node's Ready is handled exactly per the contract (persist,
//! send, apply, advance), with optional crashes before and after the
//! persist, and (for the Figure 8 profiles) right after a node takes
//! office or a leader's commit index advances; invariants are checked as
//! the Readies are handled, and after each one on the node's whole state
//! (see [`crate::sim::invariants`]).
//!
//! Invariants:
//! - Everything is driven by `seed`: same seed and same calls, same run
//!   (checked by a trace hash).
//! - A crash loses exactly what was not persisted: the core, the unsent
//!   messages and the application state (rebuilt from the snapshot and the
//!   log on restart).

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{DefaultHasher, Hash, Hasher};

use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::core::{
    ConfChange, Config, Entry, EntryKind, LogIndex, Membership, Message, MessageBody, Node, NodeId,
    ProposalId, ReadState, Ready, Role, Term,
};
use crate::sim::invariants::commit_safety::ElectionView;
use crate::sim::invariants::{Invariants, Violation};
use crate::sim::kv::KvState;
use crate::sim::network::{Network, NetworkFaults};
use crate::storage::{MemStorage, Storage};

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
    /// Take a snapshot every this many applied entries (0: never).
    pub snapshot_interval: u64,
    /// Snapshot chunk size, in bytes.
    pub snapshot_chunk_bytes: u64,
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
            snapshot_interval: 0,
            snapshot_chunk_bytes: 64,
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

/// One simulated server.
pub struct SimNode {
    /// The running core, or `None` while crashed.
    node: Option<Node<MemStorage>>,
    /// The disk while crashed.
    disk: Option<MemStorage>,
    /// The application state (lost on crash).
    pub kv: KvState,
    /// Grows on each restart; lets clients notice a crash.
    pub incarnation: u64,
    /// Removed from the group and shut down for good.
    pub decommissioned: bool,
}

impl SimNode {
    /// Returns the running core, if up.
    pub fn core(&self) -> Option<&Node<MemStorage>> {
        self.node.as_ref()
    }
}

/// A whole simulated group.
pub struct Cluster {
    /// The configuration.
    pub config: ClusterConfig,
    /// The nodes, by id.
    pub nodes: BTreeMap<NodeId, SimNode>,
    /// The network.
    pub network: Network,
    /// The current tick.
    pub now: u64,
    /// The checkers.
    pub invariants: Invariants,
    /// Events since the last `take_events`.
    events: Vec<NodeEvent>,
    /// Removed nodes still running, with the index of their removal: an
    /// operator shuts one down once every other node applied it.
    removals: BTreeMap<NodeId, LogIndex>,
    /// A violation found outside a step (a node restarting without a vote
    /// it acted on), reported by the next step.
    pending_violation: Option<Violation>,
    rng: SmallRng,
    seed: u64,
    trace: DefaultHasher,
}

impl Cluster {
    /// Returns a cluster of `config.voters` fresh voters driven by `seed`.
    pub fn new(config: ClusterConfig, faults: NetworkFaults, seed: u64) -> Cluster {
        let membership = Membership::with_voters((1..=config.voters).map(NodeId));
        let mut cluster = Cluster {
            nodes: BTreeMap::new(),
            network: Network::new(faults),
            now: 0,
            invariants: Invariants::default(),
            events: Vec::new(),
            removals: BTreeMap::new(),
            pending_violation: None,
            rng: SmallRng::seed_from_u64(seed),
            seed,
            trace: DefaultHasher::new(),
            config,
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
                kv: KvState::default(),
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
        config.message_bytes_max = self.config.message_bytes_max;
        config.inflight_messages_max = self.config.inflight_messages_max;
        config.inflight_bytes_max = self.config.inflight_bytes_max;
        config.promote_lag_entries_max = 50;
        config
    }

    fn start(&mut self, id: NodeId) {
        let config = self.node_config(id);
        let seed = self.seed ^ id.0.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ self.now.rotate_left(32);
        let sim = self.nodes.get_mut(&id).expect("node exists");
        let disk = sim.disk.take().expect("a stopped node has its disk");
        if let Err(violation) = self.invariants.check_restart_votes(id, disk.hard_state()) {
            self.pending_violation.get_or_insert(violation);
        }
        self.invariants.commit_advanced(id, LogIndex(0));
        sim.kv = KvState::decode(&disk.snapshot_data());
        let snapshot = disk.snapshot_meta();
        sim.kv.applied = snapshot.index;
        sim.incarnation += 1;
        sim.node = Some(Node::new(config, disk, seed).expect("simulator configuration is valid"));
        self.invariants.observe_restart(id, snapshot.index);
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

    /// Crashes `id`: its core, unsent messages and application state are
    /// lost; its disk keeps what was persisted, and half the crashes are
    /// power failures that also lose the writes after the last synced one.
    pub fn crash(&mut self, id: NodeId) {
        let power_failure = self.rng.random_bool(0.5);
        if let Some(sim) = self.nodes.get_mut(&id)
            && let Some(node) = sim.node.take()
        {
            let mut disk = node.into_storage();
            if power_failure {
                disk.lose_unsynced();
            }
            sim.disk = Some(disk);
            sim.kv = KvState::default();
        }
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
                self.core_mut(to).expect("live").step(message);
                self.process_ready(to)?;
            }
        }
        self.shut_down_removed();
        Ok(())
    }

    /// Decommissions each removed node once every other node still in
    /// service is up and has applied its removal (so no remaining voter
    /// can still need its vote).
    fn shut_down_removed(&mut self) {
        let done: Vec<NodeId> = self
            .removals
            .iter()
            .filter(|&(&removed, &index)| {
                self.nodes
                    .iter()
                    .filter(|&(&id, n)| id != removed && !n.decommissioned)
                    .all(|(_, n)| {
                        n.node
                            .as_ref()
                            .is_some_and(|core| core.status().applied >= index)
                    })
            })
            .map(|(&removed, _)| removed)
            .collect();
        for removed in done {
            self.removals.remove(&removed);
            self.decommission(removed);
        }
    }

    /// Runs `step` until `condition` holds or `ticks_max` ticks pass.
    pub fn run_until(
        &mut self,
        ticks_max: u64,
        mut condition: impl FnMut(&Cluster) -> bool,
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
        let core = self.core_mut(id).expect("live");
        let previous_term = ready
            .entries
            .first()
            .and_then(|e| core.term_at(e.index.prev()))
            .unwrap_or_default();
        core.storage_mut()
            .persist(&ready.persist_batch())
            .expect("memory storage accepts the core's batches");
        self.invariants
            .observe_persisted(id, &ready.entries, previous_term)?;
        if self.roll_crash() {
            self.crash(id);
            return Ok(false);
        }
        for message in &ready.messages {
            self.send(message.clone())?;
        }
        self.apply(id, &ready)?;
        let reads = ready
            .read_states
            .iter()
            .map(|&read| NodeEvent::ReadReady { node: id, read });
        self.events.extend(reads);
        let core = self.core_mut(id).expect("live");
        core.advance();
        self.maybe_snapshot(id)?;
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
        let core = self.nodes[&id].node.as_ref().expect("live");
        let status = core.status();
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
                let storage = sim.node.as_ref().map(Node::storage).or(sim.disk.as_ref())?;
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

    /// Checks the role-related invariants before a Ready is persisted.
    fn check_ready(&mut self, id: NodeId, ready: &Ready) -> Result<(), Violation> {
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

    fn apply(&mut self, id: NodeId, ready: &Ready) -> Result<(), Violation> {
        if let Some(meta) = &ready.snapshot {
            let data = self.core(id).expect("live").storage().snapshot_data();
            self.invariants
                .observe_snapshot_data(id, meta.index, &data)?;
            let sim = self.nodes.get_mut(&id).expect("live");
            sim.kv = KvState::decode(&data);
            sim.kv.applied = meta.index;
            self.invariants
                .observe_restored(id, meta.index, meta.term)?;
        }
        for entry in &ready.committed_entries {
            self.invariants.observe_applied(id, entry)?;
            entry.index.hash(&mut self.trace);
            entry.term.hash(&mut self.trace);
            let sim = self.nodes.get_mut(&id).expect("live");
            sim.kv.apply(entry.index, &entry.data);
            if entry.kind == EntryKind::ConfChange {
                // As the driver does: a synced write once a change applies.
                let core = sim.node.as_mut().expect("live");
                let membership = core.status().membership;
                core.storage_mut()
                    .save_membership(&membership, entry.index)
                    .expect("memory storage");
                if let Some(ConfChange::RemoveNode(removed)) = ConfChange::decode(&entry.data) {
                    self.removals.entry(removed).or_insert(entry.index);
                }
            }
            self.events.push(NodeEvent::Applied {
                node: id,
                entry: entry.clone(),
            });
        }
        Ok(())
    }

    fn maybe_snapshot(&mut self, id: NodeId) -> Result<(), Violation> {
        let interval = self.config.snapshot_interval;
        let sim = self.nodes.get_mut(&id).expect("live");
        let applied = sim.kv.applied;
        let core = sim.node.as_mut().expect("live");
        let snapshot_index = core.storage().snapshot_meta().index;
        if interval > 0 && applied.0 >= snapshot_index.0 + interval {
            let membership = core.status().membership;
            let data = sim.kv.encode();
            self.invariants.observe_snapshot_data(id, applied, &data)?;
            core.storage_mut()
                .create_snapshot(applied, membership, data);
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
