//! A small DSL for named scenario tests on the simulated cluster, in the
//! spirit of TigerBeetle's `replica_test.zig`: partition, isolate, heal,
//! crash, restart, propose, and wait on conditions with tick deadlines.
//! Every wait returns an error naming what did not happen in time.

use std::collections::BTreeSet;

use bytes::Bytes;

use crate::core::{LogIndex, NodeId, ProposalId, Role};
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
                "{what}: not within {ticks_max} ticks (now tick {})",
                self.now
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
            .map(|n| n.kv.get(key))
            .unwrap_or_default()
    }

    /// Returns the commit index of `id` (0 if down).
    pub fn commit_of(&self, id: NodeId) -> LogIndex {
        self.core(id)
            .map(|core| core.status().commit)
            .unwrap_or_default()
    }
}
