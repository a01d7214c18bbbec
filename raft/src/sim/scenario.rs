//! A small DSL for named scenario tests on the simulated cluster, in the
//! spirit of TigerBeetle's `replica_test.zig`: partition, isolate, heal,
//! crash, restart, propose, and wait on conditions with tick deadlines.
//! Every wait returns an error naming what did not happen in time. Under
//! crashes and unreliable networks, puts are re-proposed until acknowledged
//! (`put_acknowledged`), and the fate of each put can be checked on every
//! member once they caught up (`expect_put_outcome`), as can each member's
//! whole application state against the leader's
//! (`expect_states_match_leader`). Crashes can be armed at a step of a
//! follower's restore (`Cluster::arm_crash`).

use std::collections::BTreeSet;

use bytes::Bytes;

use crate::core::storage::Storage;
use crate::core::{LogIndex, NodeId, ProposalId, RestorePoint, Role, Term};
use crate::sim::cluster::Cluster;
use crate::sim::invariants::Violation;
use crate::sim::kv::KvCommand;

/// Why a scenario step failed.
pub type ScenarioResult<T> = Result<T, String>;

fn violation(violation: Violation) -> String {
    format!("invariant broken: {violation}")
}

impl Cluster {
    /// Splits the nodes into the given sides (ids not listed stay with no
    /// side and are cut from everyone).
    pub fn partition_sides(&mut self, sides: &[&[u64]]) {
        let all = self.all_ids();
        self.network.heal();
        for side in sides {
            let side: BTreeSet<NodeId> = side.iter().copied().map(NodeId).collect();
            self.network.partition(&side, &all);
        }
        let listed: BTreeSet<NodeId> = sides
            .iter()
            .flat_map(|s| s.iter().copied().map(NodeId))
            .collect();
        for loner in all.difference(&listed) {
            self.network.partition(&BTreeSet::from([*loner]), &all);
        }
    }

    /// Cuts `id` off from every other node.
    pub fn isolate(&mut self, id: NodeId) {
        let all = self.all_ids();
        self.network.partition(&BTreeSet::from([id]), &all);
    }

    /// Restores every link.
    pub fn heal(&mut self) {
        self.network.heal();
    }

    /// Runs `ticks` ticks.
    pub fn run_ticks(&mut self, ticks: u64) -> ScenarioResult<()> {
        for _ in 0..ticks {
            self.step().map_err(violation)?;
        }
        Ok(())
    }

    /// Waits until `condition` holds, for at most `ticks_max` ticks.
    pub fn wait_until(
        &mut self,
        what: &str,
        ticks_max: u64,
        condition: impl FnMut(&Cluster) -> bool,
    ) -> ScenarioResult<()> {
        match self.run_until(ticks_max, condition) {
            Ok(true) => Ok(()),
            Ok(false) => Err(format!(
                "{what}: not within {ticks_max} ticks (now tick {}); nodes: {}",
                self.now,
                self.describe()
            )),
            Err(broken) => Err(violation(broken)),
        }
    }

    /// Waits for a leader among the live nodes and returns it.
    pub fn wait_for_leader(&mut self, ticks_max: u64) -> ScenarioResult<NodeId> {
        self.wait_until("a leader is elected", ticks_max, |c| c.leader().is_some())?;
        Ok(self.leader().expect("checked"))
    }

    /// Returns the live nodes that believe they lead, with their terms.
    pub fn leaders(&self) -> Vec<(NodeId, u64)> {
        self.live_ids()
            .into_iter()
            .filter_map(|id| self.core(id).map(|core| (id, core.status())))
            .filter(|(_, status)| status.role == Role::Leader)
            .map(|(id, status)| (id, status.term.0))
            .collect()
    }

    /// Proposes a Put of `key` = `value` at `id`.
    pub fn propose_put(
        &mut self,
        id: NodeId,
        key: &str,
        value: &str,
    ) -> ScenarioResult<ProposalId> {
        let command = KvCommand::Put {
            key: key.into(),
            value: value.into(),
        };
        self.propose(id, command.encode(0))
            .map_err(|error| format!("proposal at node {id} refused: {error}"))
    }

    /// Proposes raw `data` at `id`.
    pub fn propose_bytes(&mut self, id: NodeId, data: &'static [u8]) -> ScenarioResult<ProposalId> {
        self.propose(id, Bytes::from_static(data))
            .map_err(|error| format!("proposal at node {id} refused: {error}"))
    }

    /// Returns how many live nodes applied the proposal (the entry at its
    /// index has its term).
    pub fn applied_count(&self, proposal: ProposalId) -> usize {
        self.live_ids()
            .into_iter()
            .filter_map(|id| self.core(id))
            .filter(|core| {
                core.status().applied >= proposal.index
                    && self.invariants.committed_term(proposal.index) == Some(proposal.term)
            })
            .count()
    }

    /// Waits until at least `count` live nodes applied the proposal.
    pub fn wait_applied(
        &mut self,
        proposal: ProposalId,
        count: usize,
        ticks_max: u64,
    ) -> ScenarioResult<()> {
        let what = format!(
            "{count} nodes apply index {} of term {}",
            proposal.index, proposal.term
        );
        self.wait_until(&what, ticks_max, |c| c.applied_count(proposal) >= count)
    }

    /// Proposes a Put at the current leader and waits until `count` nodes
    /// applied it.
    pub fn put_committed(
        &mut self,
        key: &str,
        value: &str,
        count: usize,
        ticks_max: u64,
    ) -> ScenarioResult<ProposalId> {
        let leader = self.wait_for_leader(ticks_max)?;
        let proposal = self.propose_put(leader, key, value)?;
        self.wait_applied(proposal, count, ticks_max)?;
        Ok(proposal)
    }

    /// Returns the value of `key` on node `id` (empty if missing or down).
    pub fn value_on(&self, id: NodeId, key: &str) -> String {
        self.nodes
            .get(&id)
            .map(|n| n.state().machine.get(key))
            .unwrap_or_default()
    }

    /// Returns the restore `id`'s application has under way (it survives
    /// crashes), if any.
    pub fn restore_point(&self, id: NodeId) -> Option<RestorePoint> {
        self.nodes
            .get(&id)
            .and_then(|n| n.state().restoring.clone())
    }

    /// Returns the compacted prefix of `id`'s log (running or not).
    pub fn compacted_prefix(&self, id: NodeId) -> Option<LogIndex> {
        let storage = self.nodes.get(&id)?.storage()?;
        Some(storage.snapshot_meta().index)
    }

    /// Checks that every live member's application holds the leader's
    /// state, at the same applied index (meaningful once they caught up).
    pub fn expect_states_match_leader(&self) -> ScenarioResult<()> {
        let leader = self.leader().ok_or("no leader")?;
        let expected = self.nodes[&leader].state();
        for id in self.live_ids() {
            let member = self
                .core(id)
                .is_some_and(|core| core.status().membership.contains(id));
            let state = self.nodes[&id].state();
            if member && state != expected {
                return Err(format!(
                    "node {id} holds {:?} at {} (restoring {:?}), the leader {leader} holds {:?} at {} (tick {})",
                    state.machine.values(),
                    state.applied,
                    state.restoring,
                    expected.machine.values(),
                    expected.applied,
                    self.now
                ));
            }
        }
        Ok(())
    }

    /// Returns the commit index of `id` (0 if down).
    pub fn commit_of(&self, id: NodeId) -> LogIndex {
        self.core(id)
            .map(|core| core.status().commit)
            .unwrap_or_default()
    }
}

/// Helpers for scenarios under crashes and unreliable networks, where a
/// single proposal may be lost and must be retried.
impl Cluster {
    /// Returns the current term of `id` (0 if down).
    pub fn term_of(&self, id: NodeId) -> Term {
        self.core(id)
            .map(|core| core.status().term)
            .unwrap_or_default()
    }

    /// Restarts every crashed node that was not decommissioned.
    pub fn restart_all(&mut self) {
        for id in self.all_ids() {
            self.restart(id);
        }
    }

    /// Returns whether `proposal`, accepted by `node`, can still take
    /// effect: it is committed, or `node` still leads the proposal's term
    /// and no other entry was committed at its index.
    pub fn proposal_alive(&self, node: NodeId, proposal: ProposalId) -> bool {
        match self.invariants.committed_term(proposal.index) {
            Some(term) => term == proposal.term,
            None => self.core(node).is_some_and(|core| {
                let status = core.status();
                status.role == Role::Leader && status.term == proposal.term
            }),
        }
    }

    /// Puts `key` = `value` until `count` live nodes applied it,
    /// re-proposing at the current leader whenever the last proposal can
    /// no longer take effect (its leader crashed, stepped down or was
    /// superseded). Calls `each_tick` before every tick (to inject or
    /// repair faults). Returns the proposal that took effect.
    pub fn put_acknowledged_with(
        &mut self,
        key: &str,
        value: &str,
        count: usize,
        ticks_max: u64,
        mut each_tick: impl FnMut(&mut Cluster),
    ) -> ScenarioResult<ProposalId> {
        let mut pending: Option<(NodeId, ProposalId)> = None;
        for _ in 0..ticks_max {
            if let Some((_, proposal)) = pending
                && self.applied_count(proposal) >= count
            {
                return Ok(proposal);
            }
            each_tick(self);
            let alive = pending.is_some_and(|(node, proposal)| self.proposal_alive(node, proposal));
            if !alive
                && let Some(leader) = self.leader()
                && let Ok(proposal) = self.propose_put(leader, key, value)
            {
                pending = Some((leader, proposal));
            }
            self.step().map_err(violation)?;
        }
        match pending {
            Some((_, proposal)) if self.applied_count(proposal) >= count => Ok(proposal),
            _ => Err(format!(
                "put {key}={value} applied by {count} nodes: not within {ticks_max} ticks \
                 (now tick {}, last proposal {pending:?}); nodes: {}",
                self.now,
                self.describe()
            )),
        }
    }

    /// Puts `key` = `value` until `count` live nodes applied it, retrying
    /// as [`Cluster::put_acknowledged_with`] does.
    pub fn put_acknowledged(
        &mut self,
        key: &str,
        value: &str,
        count: usize,
        ticks_max: u64,
    ) -> ScenarioResult<ProposalId> {
        self.put_acknowledged_with(key, value, count, ticks_max, |_| {})
    }

    /// Returns whether a leader has committed an entry of its own term and
    /// every member it knows is up and has applied its commit index.
    pub fn caught_up(&self) -> bool {
        let Some(leader) = self.leader() else {
            return false;
        };
        let Some(core) = self.core(leader) else {
            return false;
        };
        let status = core.status();
        core.term_at(status.commit) == Some(status.term)
            && status.membership.members().all(|member| {
                self.core(member)
                    .is_some_and(|core| core.status().applied >= status.commit)
            })
    }

    /// Waits until [`Cluster::caught_up`] holds; returns the leader.
    pub fn wait_caught_up(&mut self, ticks_max: u64) -> ScenarioResult<NodeId> {
        self.wait_until("every member catches up with the leader", ticks_max, |c| {
            c.caught_up()
        })?;
        Ok(self.leader().expect("caught_up checked a leader"))
    }

    /// Returns the node of `side` that leads the highest term any live
    /// node of `side` is in, if there is one.
    pub fn leader_among(&self, side: &[NodeId]) -> Option<NodeId> {
        let term_max = side.iter().map(|&id| self.term_of(id)).max()?;
        side.iter().copied().find(|&id| {
            self.core(id).is_some_and(|core| {
                let status = core.status();
                status.role == Role::Leader && status.term == term_max
            })
        })
    }

    /// Waits until [`Cluster::leader_among`] finds a leader in `side`, of a
    /// term above `term_min`; returns it.
    pub fn wait_for_leader_among(
        &mut self,
        side: &[NodeId],
        term_min: Term,
        ticks_max: u64,
    ) -> ScenarioResult<NodeId> {
        let what = format!("nodes {side:?} elect a leader of a term above {term_min}");
        self.wait_until(&what, ticks_max, |c| {
            c.leader_among(side)
                .is_some_and(|leader| c.term_of(leader) > term_min)
        })?;
        Ok(self.leader_among(side).expect("checked"))
    }

    /// Returns how many messages of `kind` (see
    /// [`crate::core::MessageBody::kind_name`]) were sent so far.
    pub fn messages_sent(&self, kind: &str) -> u64 {
        self.network.sent.get(kind).copied().unwrap_or(0)
    }

    /// Checks the fate of a put of a key that no other proposal writes: if
    /// the proposal committed, every live member holds `value`; otherwise
    /// none holds anything for `key`. Meaningful once members caught up.
    pub fn expect_put_outcome(
        &self,
        proposal: ProposalId,
        key: &str,
        value: &str,
    ) -> ScenarioResult<()> {
        if self.invariants.committed_term(proposal.index) == Some(proposal.term) {
            self.expect_value_everywhere(key, value)
        } else {
            self.expect_value_everywhere(key, "")
        }
    }

    /// Checks that every live node that counts itself a member holds
    /// `value` for `key`.
    pub fn expect_value_everywhere(&self, key: &str, value: &str) -> ScenarioResult<()> {
        for id in self.live_ids() {
            let member = self
                .core(id)
                .is_some_and(|core| core.status().membership.contains(id));
            let found = self.value_on(id, key);
            if member && found != value {
                return Err(format!(
                    "node {id} has {key}={found:?}, expected {value:?} (tick {})",
                    self.now
                ));
            }
        }
        Ok(())
    }
}
