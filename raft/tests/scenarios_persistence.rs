//! Persistence and fault-tolerance scenarios on the deterministic
//! simulator, ported from MIT 6.824 lab 2C (Raft paper §5.1 persistent
//! state, §5.4 safety, Figure 8): crashes and restarts of one, several or
//! all nodes, crashes inside the Ready loop, the Figure 8 scenario, an
//! unreliable network, and churn. Every run uses fixed seeds; a failure
//! names its seed (`SEED=<seed> ...`).

mod common;

use std::collections::BTreeSet;

use common::{election_timeouts, ensure, node_after, run_seeds};
use raft::core::{LogIndex, NodeId, ProposalId, Term};
use raft::sim::cluster::{Cluster, ClusterConfig};
use raft::sim::network::NetworkFaults;
use raft::sim::scenario::ScenarioResult;
use rand::Rng;

/// A proposed put of a key no other proposal writes.
type Put = (ProposalId, String, String);

/// Probability of a crash at each crash point of a Ready in the tests
/// with crashes inside the Ready loop: a node handles a Ready every tick
/// or two (two crash points each), so some node of the cluster crashes
/// every few dozen ticks.
const CRASH_IN_READY: f64 = 0.01;

/// A cluster driven the way the lab's tests drive theirs: nodes are
/// connected or not, and up or held down by the scenario; a node crashed
/// by a crash point inside a Ready (not held down) is restarted before the
/// next tick. Remembers every acknowledged put to check it at the end.
struct Lab {
    cluster: Cluster,
    voters: u64,
    connected: BTreeSet<NodeId>,
    held_down: BTreeSet<NodeId>,
    acknowledged: Vec<(String, String)>,
}

impl Lab {
    fn new(voters: u64, crash_in_ready: f64, seed: u64) -> Lab {
        let mut config = ClusterConfig::new(voters);
        config.crash_in_ready = crash_in_ready;
        let cluster = Cluster::new(config, NetworkFaults::reliable(), seed);
        let connected = cluster.all_ids();
        Lab {
            cluster,
            voters,
            connected,
            held_down: BTreeSet::new(),
            acknowledged: Vec::new(),
        }
    }

    /// Returns the node `offset` places after `id`.
    fn after(&self, id: NodeId, offset: u64) -> NodeId {
        node_after(id, offset, self.voters)
    }

    /// Puts a fresh key until `count` nodes applied it (the lab's `one`).
    fn one(&mut self, count: usize) -> ScenarioResult<ProposalId> {
        let key = format!("k{}", self.acknowledged.len());
        let value = format!("v{}", self.acknowledged.len());
        let held_down = self.held_down.clone();
        let deadline = election_timeouts(&self.cluster, 50);
        let proposal = self
            .cluster
            .put_acknowledged_with(&key, &value, count, deadline, |c| {
                restart_all_but(c, &held_down);
            })?;
        self.acknowledged.push((key, value));
        Ok(proposal)
    }

    /// Waits for a leader among the connected nodes.
    fn leader(&mut self) -> ScenarioResult<NodeId> {
        let side: Vec<NodeId> = self.connected.iter().copied().collect();
        for _ in 0..election_timeouts(&self.cluster, 20) {
            if let Some(leader) = self.cluster.leader_among(&side) {
                return Ok(leader);
            }
            self.run(1)?;
        }
        Err(format!(
            "no leader among {side:?} by tick {}",
            self.cluster.now
        ))
    }

    /// Waits until `count` nodes applied `proposal` (the lab's `wait`).
    fn wait_applied(&mut self, proposal: ProposalId, count: usize) -> ScenarioResult<()> {
        for _ in 0..election_timeouts(&self.cluster, 20) {
            if self.cluster.applied_count(proposal) >= count {
                return Ok(());
            }
            self.run(1)?;
        }
        Err(format!(
            "{proposal:?} not applied by {count} nodes by tick {}",
            self.cluster.now
        ))
    }

    /// Runs `ticks` ticks, restarting nodes crashed inside a Ready.
    fn run(&mut self, ticks: u64) -> ScenarioResult<()> {
        for _ in 0..ticks {
            restart_all_but(&mut self.cluster, &self.held_down);
            self.cluster.run_ticks(1)?;
        }
        Ok(())
    }

    fn disconnect(&mut self, id: NodeId) {
        self.connected.remove(&id);
        self.apply_partition();
    }

    fn connect(&mut self, id: NodeId) {
        self.connected.insert(id);
        self.apply_partition();
    }

    fn apply_partition(&mut self) {
        let side: Vec<u64> = self.connected.iter().map(|id| id.0).collect();
        self.cluster.partition_sides(&[&side]);
    }

    /// Crashes `id` and holds it down.
    fn crash(&mut self, id: NodeId) {
        self.cluster.crash(id);
        self.held_down.insert(id);
    }

    /// Crashes `id` (if up) and restarts it from its disk (the lab's
    /// `start1`).
    fn start(&mut self, id: NodeId) {
        self.cluster.crash(id);
        self.cluster.restart(id);
        self.held_down.remove(&id);
    }

    /// Stops the crashes, restarts and connects everyone, commits a new
    /// put on all nodes and checks every acknowledged put on every node.
    fn check(&mut self) -> ScenarioResult<()> {
        self.cluster.config.crash_in_ready = 0.0;
        for id in self.cluster.all_ids() {
            self.start(id);
            self.connect(id);
        }
        self.one(usize::try_from(self.voters).expect("small"))?;
        self.cluster
            .wait_caught_up(election_timeouts(&self.cluster, 20))?;
        for (key, value) in &self.acknowledged {
            self.cluster.expect_value_everywhere(key, value)?;
        }
        Ok(())
    }
}

/// Restarts every crashed node except those in `held_down`.
fn restart_all_but(cluster: &mut Cluster, held_down: &BTreeSet<NodeId>) {
    for id in cluster.all_ids() {
        if !held_down.contains(&id) {
            cluster.restart(id);
        }
    }
}

/// The lab's TestPersist1: restart all nodes, then the leader, then a
/// leader cut off while the others commit, then a follower.
fn persist_one_and_all(seed: u64, crash_in_ready: f64) -> ScenarioResult<()> {
    let mut lab = Lab::new(3, crash_in_ready, seed);
    lab.one(3)?;
    for id in lab.cluster.all_ids() {
        lab.start(id);
    }
    lab.one(3)?;
    let leader = lab.leader()?;
    lab.start(leader);
    lab.one(3)?;
    let leader = lab.leader()?;
    lab.disconnect(leader);
    let missed = lab.one(2)?;
    lab.start(leader);
    lab.connect(leader);
    lab.wait_applied(missed, 3)?;
    let leader = lab.leader()?;
    let follower = lab.after(leader, 1);
    lab.disconnect(follower);
    lab.one(2)?;
    lab.start(follower);
    lab.connect(follower);
    lab.one(3)?;
    lab.check()
}

/// The lab's TestPersist2: 5 rounds on 5 nodes; two followers miss a put,
/// then restart with one node that has it while the other two are cut
/// off: the three must elect the one with the put and commit again.
fn persist_majority(seed: u64, crash_in_ready: f64) -> ScenarioResult<()> {
    let mut lab = Lab::new(5, crash_in_ready, seed);
    for _ in 0..5 {
        lab.one(5)?;
        let leader = lab.leader()?;
        lab.disconnect(lab.after(leader, 1));
        lab.disconnect(lab.after(leader, 2));
        lab.one(3)?;
        for offset in [0, 3, 4] {
            lab.disconnect(lab.after(leader, offset));
        }
        for offset in [1, 2] {
            lab.start(lab.after(leader, offset));
            lab.connect(lab.after(leader, offset));
        }
        lab.run(election_timeouts(&lab.cluster, 1))?;
        lab.start(lab.after(leader, 3));
        lab.connect(lab.after(leader, 3));
        lab.one(3)?;
        lab.connect(lab.after(leader, 4));
        lab.connect(leader);
    }
    lab.one(5)?;
    lab.check()
}

/// The lab's TestPersist3: a follower misses a put; the two that have it
/// crash; the follower and one restarted node must commit again.
fn persist_partitioned(seed: u64, crash_in_ready: f64) -> ScenarioResult<()> {
    let mut lab = Lab::new(3, crash_in_ready, seed);
    lab.one(3)?;
    let leader = lab.leader()?;
    lab.disconnect(lab.after(leader, 2));
    lab.one(2)?;
    lab.crash(leader);
    lab.crash(lab.after(leader, 1));
    lab.connect(lab.after(leader, 2));
    lab.start(leader);
    lab.one(2)?;
    lab.start(lab.after(leader, 1));
    lab.one(3)?;
    lab.check()
}

// Goal: every put acknowledged before a crash survives restarts of one
// node, of the leader, and of all nodes, and new puts commit afterwards.
// Method: 3 nodes: restart all, restart the leader, cut off the leader
// while the other two commit and restart it, do the same to a follower;
// then restart everything and check every acknowledged put on every node.
// Ports: 6.824 lab 2C TestPersist1; Raft paper §5.1 (persistent state).
#[test]
fn acknowledged_puts_survive_restarts_of_one_or_all_nodes() {
    run_seeds(&[1, 2, 3, 4], |seed| persist_one_and_all(seed, 0.0));
}

// Goal: acknowledged puts survive repeated restarts of a majority, and
// the restarted majority elects the one node whose log is complete.
// Method: 5 nodes, 5 rounds of: put on all; cut off two followers; put on
// three; cut off those three; restart the two with stale logs and one of
// the three; put on three; reconnect all.
// Ports: 6.824 lab 2C TestPersist2; Raft paper §5.1, §5.4.1.
#[test]
fn acknowledged_puts_survive_restarts_of_a_majority() {
    run_seeds(&[1, 2, 3, 4], |seed| persist_majority(seed, 0.0));
}

// Goal: a node that missed a put and a restarted node that has it form a
// majority that keeps the put and commits new ones.
// Method: 3 nodes; cut off a follower; put on the other two; crash both;
// reconnect the follower, restart the old leader; put on two; restart the
// last node; put on three.
// Ports: 6.824 lab 2C TestPersist3; Raft paper §5.1, §5.4.1.
#[test]
fn acknowledged_puts_survive_crashes_of_the_nodes_that_have_them() {
    run_seeds(&[1, 2, 3, 4], |seed| persist_partitioned(seed, 0.0));
}

// Goal: the three restart scenarios above also hold when nodes crash at
// random crash points inside the Ready loop (before persisting, or after
// persisting but before sending).
// Method: the same scenarios with `crash_in_ready` > 0; a node crashed
// that way is restarted before the next tick; puts are re-proposed until
// acknowledged.
// Ports: 6.824 lab 2C TestPersist1/2/3; Raft paper §5.1; etcd's Ready
// contract (persist before send).
#[test]
fn acknowledged_puts_survive_crashes_inside_the_ready_loop() {
    run_seeds(&[1, 2, 3, 4], |seed| {
        persist_one_and_all(seed, CRASH_IN_READY)?;
        persist_majority(seed, CRASH_IN_READY)?;
        persist_partitioned(seed, CRASH_IN_READY)
    });
}

/// Proposes a put of a fresh key at every live node that believes it
/// leads (the lab calls `Start` on every server); returns the last one
/// that accepted.
fn propose_at_leaders(
    cluster: &mut Cluster,
    iteration: usize,
    puts: &mut Vec<Put>,
) -> Option<NodeId> {
    let mut accepted = None;
    for (id, _) in cluster.leaders() {
        let (key, value) = (format!("f{iteration}-{id}"), format!("v{iteration}"));
        if let Ok(proposal) = cluster.propose_put(id, &key, &value) {
            puts.push((proposal, key, value));
            accepted = Some(id);
        }
    }
    accepted
}

/// Draws how long to run after proposing: usually 0 to 2 ticks, one time
/// in ten up to two election timeouts (the lab's short and long sleeps).
fn pause_ticks(cluster: &mut Cluster) -> u64 {
    let long = election_timeouts(cluster, 2);
    if cluster.rng().random_bool(0.1) {
        cluster.rng().random_range(0..long)
    } else {
        cluster.rng().random_range(0..=2)
    }
}

/// Ends a run of random faults: heals, makes the network reliable or
/// not, restarts everyone, commits a last put on every node, and checks
/// the fate of every tracked put (committed: on every node; otherwise on
/// none). Returns how many tracked puts committed.
fn settle_and_check(
    cluster: &mut Cluster,
    faults: NetworkFaults,
    puts: &[Put],
) -> ScenarioResult<usize> {
    cluster.heal();
    cluster.network.faults = faults;
    cluster.restart_all();
    let deadline = election_timeouts(cluster, 100);
    let voters = cluster.all_ids().len();
    cluster.put_acknowledged("end", "end", voters, deadline)?;
    cluster.wait_caught_up(deadline)?;
    cluster.expect_value_everywhere("end", "end")?;
    for (proposal, key, value) in puts {
        cluster.expect_put_outcome(*proposal, key, value)?;
    }
    let committed = puts
        .iter()
        .filter(|(proposal, ..)| {
            cluster.invariants.committed_term(proposal.index) == Some(proposal.term)
        })
        .count();
    Ok(committed)
}

// Goal: the Figure 8 hazard never bites: a leader never commits an entry
// of an earlier term by counting replicas, so an entry replicated to a
// majority by a crashed leader can be overwritten only if it was never
// committed. All nodes end up agreeing, and a final put commits on all.
// Method: 5 nodes, 1000 iterations of: propose at every node that
// believes it leads, run 0-2 ticks (sometimes up to two election
// timeouts), crash the node that accepted last; when fewer than 3 nodes
// are up, restart a random one. The invariants (state machine safety,
// leader completeness) are checked after every step. At the end everyone
// restarts, a put commits on all 5, and each proposal's key holds its
// value on every node if it committed and on none otherwise.
// Ports: 6.824 lab 2C TestFigure8; Raft paper §5.4.2 and Figure 8.
#[test]
fn figure_8_crashed_leaders_never_lose_committed_entries() {
    run_seeds(&[1, 2, 3], |seed| {
        let mut cluster = Cluster::new(ClusterConfig::new(5), NetworkFaults::reliable(), seed);
        cluster.put_acknowledged("start", "start", 1, election_timeouts(&cluster, 20))?;
        let mut puts = Vec::new();
        for iteration in 0..1000 {
            let accepted = propose_at_leaders(&mut cluster, iteration, &mut puts);
            let ticks = pause_ticks(&mut cluster);
            cluster.run_ticks(ticks)?;
            if let Some(leader) = accepted {
                cluster.crash(leader);
            }
            if cluster.live_ids().len() < 3 {
                let node = cluster.random_node();
                cluster.restart(node);
            }
        }
        let committed = settle_and_check(&mut cluster, NetworkFaults::reliable(), &puts)?;
        ensure(committed > 0, || {
            format!("none of {} proposals committed", puts.len())
        })
    });
}

/// Returns the term of the entry at `index` in `id`'s log (`None` if
/// down, compacted or missing).
fn term_at(cluster: &Cluster, id: NodeId, index: LogIndex) -> Option<Term> {
    cluster.core(id).and_then(|core| core.term_at(index))
}

// Goal: the exact Figure 8 sequence, with its window held open: an entry
// of an earlier term that reaches a majority under a later leader is not
// committed by counting, so the node holding a conflicting entry of a
// term in between can never win and overwrite it.
// Method: 5 nodes, appends of one entry each (a leader replicates an old
// entry in one message and its own term's entry in the next, so a
// follower holds the old entry alone for a while). (a) Leader S1, cut off
// with S2, appends X at index i, which reaches S2 only; S1 crashes.
// (b) S3, S4, S5 elect a leader E of a later term, cut off (its own entry
// at i never leaves it) and crashed at once. (c) S1 restarts; S1, S2 and
// the other two elect M in {S1, S2}, which replicates X; the moment M's
// commit index reaches i, M crashes (the paper's (d)). (e) E restarts with
// the two it could persuade. Commit safety is checked as M commits, leader
// completeness on every leader after: with the Figure 8 bug planted, the
// commit of X fires `commit_safety` in (c). At the end everyone is up and
// X is on all 5 if it committed, on none otherwise.
// Ports: Raft paper §5.4.2 and Figure 8; 6.824 lab 2C TestFigure8 (which
// only reaches this sequence by chance).
#[test]
fn figure_8_window_an_old_entry_is_never_committed_by_counting() {
    run_seeds(&[1, 2, 3, 4, 5], |seed| {
        let mut config = ClusterConfig::new(5);
        config.message_bytes_max = 1;
        let mut cluster = Cluster::new(config, NetworkFaults::reliable(), seed);
        let deadline = election_timeouts(&cluster, 30);
        cluster.put_acknowledged("start", "start", 5, deadline)?;
        // (a) X reaches S1 and S2 only.
        let s1 = cluster.wait_for_leader(deadline)?;
        let s2 = node_after(s1, 1, 5);
        let others: Vec<NodeId> = (2..5).map(|offset| node_after(s1, offset, 5)).collect();
        cluster.partition_sides(&[&[s1.0, s2.0]]);
        let x = cluster.propose_put(s1, "x", "figure 8")?;
        cluster.wait_until("S2 holds X", deadline, |c| {
            term_at(c, s2, x.index) == Some(x.term)
        })?;
        cluster.crash(s1);
        // (b) E, elected by the other three, keeps its entry at i to itself.
        let ids: Vec<u64> = others.iter().map(|id| id.0).collect();
        cluster.partition_sides(&[&ids]);
        let e = cluster.wait_for_leader_among(&others, x.term, deadline)?;
        let e_term = cluster.term_of(e);
        let rest: Vec<NodeId> = others.iter().copied().filter(|&id| id != e).collect();
        cluster.partition_sides(&[&[rest[0].0, rest[1].0]]);
        cluster.run_ticks(1)?;
        ensure(term_at(&cluster, e, x.index) == Some(e_term), || {
            format!("E ({e}) does not hold its own entry at {}", x.index)
        })?;
        cluster.crash(e);
        // (c) M in {S1, S2} replicates X and crashes right after its commit
        // index reaches i.
        cluster.restart(s1);
        cluster.partition_sides(&[&[s1.0, s2.0, rest[0].0, rest[1].0]]);
        let m = cluster.wait_for_leader_among(&[s1, s2], e_term, deadline)?;
        cluster.wait_until("M commits X's index", deadline, |c| {
            c.commit_of(m) >= x.index
        })?;
        cluster.crash(m);
        // (e) E comes back with the two it could persuade.
        cluster.restart(e);
        cluster.partition_sides(&[&[e.0, rest[0].0, rest[1].0]]);
        cluster.run_ticks(election_timeouts(&cluster, 5))?;
        let puts = [(x, "x".to_string(), "figure 8".to_string())];
        settle_and_check(&mut cluster, NetworkFaults::reliable(), &puts)?;
        Ok(())
    });
}

/// The network of the unreliable scenarios: 10% loss, 20% duplication,
/// delays of up to 3 ticks (hence reordering).
fn unreliable() -> NetworkFaults {
    NetworkFaults {
        loss: 0.1,
        duplicate: 0.2,
        delay_ticks_max: 3,
        ..NetworkFaults::reliable()
    }
}

// Goal: Figure 8 safety also holds on an unreliable network where leaders
// are cut off instead of crashed, with long message reordering.
// Method: 5 nodes, loss, duplication and delay on; 1000 iterations of:
// propose at every node that believes it leads, run a random pause, cut
// off the last connected node that accepted (half of the time), and
// reconnect a random node while fewer than 3 are connected; from
// iteration 200 on, delays grow to an election timeout (long reordering).
// At the end everything reconnects (the network stays unreliable), a put
// commits on all 5, and each proposal is on every node or on none.
// Ports: 6.824 lab 2C TestFigure8Unreliable; Raft paper §5.4.2, Figure 8.
#[test]
fn figure_8_holds_on_an_unreliable_network() {
    run_seeds(&[1, 2, 3], |seed| {
        let mut cluster = Cluster::new(ClusterConfig::new(5), unreliable(), seed);
        cluster.put_acknowledged("start", "start", 1, election_timeouts(&cluster, 20))?;
        let mut puts = Vec::new();
        let mut connected: BTreeSet<NodeId> = cluster.all_ids();
        for iteration in 0..1000 {
            if iteration == 200 {
                cluster.network.faults.delay_ticks_max = election_timeouts(&cluster, 1);
            }
            let accepted = propose_at_leaders(&mut cluster, iteration, &mut puts);
            let ticks = pause_ticks(&mut cluster);
            cluster.run_ticks(ticks)?;
            if let Some(leader) = accepted.filter(|id| connected.contains(id))
                && cluster.rng().random_bool(0.5)
            {
                connected.remove(&leader);
            }
            if connected.len() < 3 {
                connected.insert(cluster.random_node());
            }
            let side: Vec<u64> = connected.iter().map(|id| id.0).collect();
            cluster.partition_sides(&[&side]);
        }
        let faults = cluster.network.faults.clone();
        let committed = settle_and_check(&mut cluster, faults, &puts)?;
        ensure(committed > 0, || {
            format!("none of {} proposals committed", puts.len())
        })
    });
}

// Goal: on an unreliable network (loss, duplication, reordering) every
// put still commits, including puts proposed concurrently.
// Method: 5 nodes, 10% loss, 20% duplication, delays up to 3 ticks; 50
// iterations of: 4 puts proposed at the leader in one tick, then one put
// retried until acknowledged. At the end the network becomes reliable, a
// put commits on all 5; every acknowledged put is on every node, and
// every concurrent put is on every node or on none.
// Ports: 6.824 lab 2C TestUnreliableAgree; Raft paper §5.3.
#[test]
fn puts_commit_on_an_unreliable_network() {
    run_seeds(&[1, 2, 3], |seed| {
        let mut cluster = Cluster::new(ClusterConfig::new(5), unreliable(), seed);
        let deadline = election_timeouts(&cluster, 50);
        let mut puts = Vec::new();
        for iteration in 0..50 {
            if let Some(leader) = cluster.leader() {
                for j in 0..4 {
                    let (key, value) = (format!("c{iteration}-{j}"), format!("v{j}"));
                    if let Ok(proposal) = cluster.propose_put(leader, &key, &value) {
                        puts.push((proposal, key, value));
                    }
                }
            }
            let proposal = cluster.put_acknowledged(&format!("k{iteration}"), "v", 1, deadline)?;
            puts.push((proposal, format!("k{iteration}"), "v".to_string()));
        }
        settle_and_check(&mut cluster, NetworkFaults::reliable(), &puts)?;
        (0..50).try_for_each(|iteration| {
            cluster.expect_value_everywhere(&format!("k{iteration}"), "v")
        })
    });
}

/// Runs 3000 ticks of churn: every 7 ticks, with some probability, cut a
/// random node off, restart and reconnect one, crash one; each tick the
/// leader gets a put with probability 1/2. Returns the proposed puts.
fn churn(cluster: &mut Cluster) -> ScenarioResult<Vec<Put>> {
    let mut puts = Vec::new();
    let mut connected: BTreeSet<NodeId> = cluster.all_ids();
    for round in 0..3000 / 7 {
        if cluster.rng().random_bool(0.2) {
            connected.remove(&cluster.random_node());
        }
        if cluster.rng().random_bool(0.5) {
            let node = cluster.random_node();
            cluster.restart(node);
            connected.insert(node);
        }
        if cluster.rng().random_bool(0.2) {
            let node = cluster.random_node();
            cluster.crash(node);
        }
        let side: Vec<u64> = connected.iter().map(|id| id.0).collect();
        cluster.partition_sides(&[&side]);
        for tick in 0..7 {
            if let Some(leader) = cluster.leader()
                && cluster.rng().random_bool(0.5)
            {
                let key = format!("r{round}-{tick}");
                if let Ok(proposal) = cluster.propose_put(leader, &key, "v") {
                    puts.push((proposal, key, "v".to_string()));
                }
            }
            cluster.run_ticks(1)?;
        }
    }
    Ok(puts)
}

// Goal: after thousands of ticks of random crashes, restarts and
// partitions with proposals flowing, the cluster heals, commits a last
// put on every node, and every proposal either committed everywhere or
// nowhere; many did commit.
// Method: 5 nodes, the churn above on a reliable and on an unreliable
// network; then heal, restart all, make the network reliable, commit a put
// on all 5 and check each proposal's fate on every node. At least one in
// ten proposals must have committed.
// Ports: 6.824 lab 2C TestReliableChurn and TestUnreliableChurn; Raft
// paper §5.
#[test]
fn churn_of_crashes_and_partitions_keeps_agreement() {
    run_seeds(&[1, 2, 3], |seed| {
        for faults in [NetworkFaults::reliable(), unreliable()] {
            let mut cluster = Cluster::new(ClusterConfig::new(5), faults, seed);
            let puts = churn(&mut cluster)?;
            let committed = settle_and_check(&mut cluster, NetworkFaults::reliable(), &puts)?;
            ensure(committed * 10 >= puts.len(), || {
                format!("only {committed} of {} proposals committed", puts.len())
            })?;
        }
        Ok(())
    });
}
