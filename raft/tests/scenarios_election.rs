//! Leader election scenarios on the deterministic simulator, ported from
//! MIT 6.824 lab 2A (Raft paper §5.2, PreVote and CheckQuorum from the
//! dissertation §9.6 and §6.2). Every run uses fixed seeds; a failure
//! names its seed (`SEED=<seed> ...`).

mod common;

use std::collections::BTreeMap;

use common::{election_timeouts, ensure, run_seeds};
use raft::core::{NodeId, Role};
use raft::sim::cluster::{Cluster, ClusterConfig};
use raft::sim::network::NetworkFaults;
use raft::sim::scenario::ScenarioResult;
use rand::Rng;
use rand::seq::SliceRandom;

/// Returns a reliable cluster of `voters` nodes with the default config.
fn cluster(voters: u64, seed: u64) -> Cluster {
    Cluster::new(ClusterConfig::new(voters), NetworkFaults::reliable(), seed)
}

/// Returns the role of `id` (a crashed node counts as a follower).
fn role_of(cluster: &Cluster, id: NodeId) -> Role {
    cluster
        .core(id)
        .map_or(Role::Follower, |core| core.status().role)
}

/// Returns an error if two live nodes lead the same term (also checked by
/// the election safety invariant; this names the tick and the nodes).
fn check_one_leader_per_term(cluster: &Cluster) -> ScenarioResult<()> {
    let mut by_term: BTreeMap<u64, NodeId> = BTreeMap::new();
    for (id, term) in cluster.leaders() {
        if let Some(other) = by_term.insert(term, id) {
            return Err(format!(
                "nodes {other} and {id} both lead term {term} at tick {}",
                cluster.now
            ));
        }
    }
    Ok(())
}

/// Steps until `condition` holds, checking one leader per term after each
/// tick; fails after `ticks_max` ticks.
fn wait_checked(
    cluster: &mut Cluster,
    what: &str,
    ticks_max: u64,
    condition: impl Fn(&Cluster) -> bool,
) -> ScenarioResult<()> {
    for _ in 0..ticks_max {
        if condition(cluster) {
            return Ok(());
        }
        cluster.run_ticks(1)?;
        check_one_leader_per_term(cluster)?;
    }
    ensure(condition(cluster), || {
        format!(
            "{what}: not within {ticks_max} ticks (now tick {})",
            cluster.now
        )
    })
}

/// Runs `ticks` ticks, checking one leader per term after each.
fn run_checked(cluster: &mut Cluster, ticks: u64) -> ScenarioResult<()> {
    for _ in 0..ticks {
        cluster.run_ticks(1)?;
        check_one_leader_per_term(cluster)?;
    }
    Ok(())
}

// Goal: a fresh cluster elects exactly one leader, every node agrees on
// its term and its identity, and with no faults the leader keeps its term
// (no election is started at all) for a long time.
// Method: 3 nodes on a reliable network; wait for a leader, then run 100
// election timeouts and check after every tick that the same node leads
// the same term, and that no (pre-)vote message was sent.
// Ports: 6.824 lab 2A TestInitialElection; Raft paper §5.2.
#[test]
fn initial_election_elects_one_stable_leader() {
    run_seeds(&[1, 2, 3, 4], |seed| {
        let mut cluster = cluster(3, seed);
        let leader = cluster.wait_for_leader(election_timeouts(&cluster, 10))?;
        let term = cluster.term_of(leader);
        cluster.wait_until(
            "every node follows the leader",
            election_timeouts(&cluster, 1),
            |c| {
                c.live_ids().iter().all(|&id| {
                    let status = c.core(id).expect("live").status();
                    status.term == term && status.leader == Some(leader)
                })
            },
        )?;
        let votes_before = votes_sent(&cluster);
        for _ in 0..election_timeouts(&cluster, 100) {
            cluster.run_ticks(1)?;
            ensure(cluster.leaders() == vec![(leader, term.0)], || {
                format!(
                    "leaders changed from node {leader} in term {term}: {:?}",
                    cluster.leaders()
                )
            })?;
            ensure(
                cluster
                    .live_ids()
                    .iter()
                    .all(|&id| cluster.term_of(id) == term),
                || format!("a term moved off {term} at tick {}", cluster.now),
            )?;
        }
        let votes = votes_sent(&cluster) - votes_before;
        ensure(votes == 0, || {
            format!("{votes} (pre-)vote messages sent by a stable cluster")
        })
    });
}

/// Returns the number of (pre-)vote requests sent so far.
fn votes_sent(cluster: &Cluster) -> u64 {
    ["pre_vote", "vote"]
        .iter()
        .map(|kind| cluster.network.sent.get(kind).copied().unwrap_or(0))
        .sum()
}

// Goal: when the leader is cut off, the rest elect a new leader; when the
// old leader comes back it follows the new one without disrupting it: with
// PreVote and CheckQuorum the majority's term does not change.
// Method: 3 nodes; isolate the leader; wait for a leader of a higher term
// among the other two and for the old leader to step down (CheckQuorum);
// keep it isolated for 10 more election timeouts, in which it campaigns
// without raising its term (PreVote); heal and run 20 election timeouts,
// checking after each tick that the new leader keeps leading its term and
// no term passes it; finally the old leader follows and a put commits on
// all three.
// Ports: 6.824 lab 2A TestReElection (first half); Raft paper §5.2,
// dissertation §9.6 (PreVote) and §6.2 (CheckQuorum).
#[test]
fn leader_is_reelected_after_leader_loss() {
    run_seeds(&[1, 2, 3, 4], |seed| {
        let mut cluster = cluster(3, seed);
        let old = cluster.wait_for_leader(election_timeouts(&cluster, 10))?;
        let old_term = cluster.term_of(old);
        cluster.isolate(old);
        let others: Vec<NodeId> = cluster
            .all_ids()
            .into_iter()
            .filter(|&id| id != old)
            .collect();
        let deadline = election_timeouts(&cluster, 10);
        wait_checked(
            &mut cluster,
            "the other nodes elect a leader",
            deadline,
            |c| {
                c.leader_among(&others)
                    .is_some_and(|id| c.term_of(id) > old_term)
            },
        )?;
        let new = cluster.leader_among(&others).expect("checked");
        let new_term = cluster.term_of(new);
        cluster.wait_until(
            "the isolated leader steps down",
            election_timeouts(&cluster, 2) + 1,
            |c| role_of(c, old) != Role::Leader,
        )?;
        cluster.run_ticks(election_timeouts(&cluster, 10))?;
        ensure(cluster.term_of(old) == old_term, || {
            format!(
                "isolated node {old} raised its term from {old_term} to {}",
                cluster.term_of(old)
            )
        })?;
        cluster.heal();
        for _ in 0..election_timeouts(&cluster, 20) {
            cluster.run_ticks(1)?;
            ensure(cluster.leaders() == vec![(new, new_term.0)], || {
                format!(
                    "rejoin disrupted leader {new} of term {new_term}: {:?}",
                    cluster.leaders()
                )
            })?;
            ensure(cluster.max_term() == new_term, || {
                format!(
                    "term rose to {} after the old leader rejoined",
                    cluster.max_term()
                )
            })?;
        }
        let follows = cluster.core(old).expect("live").status().leader;
        ensure(follows == Some(new), || {
            format!("old leader {old} follows {follows:?}, not {new}")
        })?;
        cluster.put_committed("after-rejoin", "yes", 3, election_timeouts(&cluster, 10))?;
        cluster.expect_value_everywhere("after-rejoin", "yes")
    });
}

// Goal: no leader is elected while no quorum is connected, terms do not
// grow meanwhile (PreVote), and a leader is elected once a quorum is
// connected again.
// Method: 3 and 5 nodes; keep the leader with (voters-1)/2 - 1 followers
// (a minority) and isolate every other node on its own; wait for the
// leader to step down, then check after every tick of 50 election
// timeouts that no node leads and no term moved; then connect a majority
// and wait for a leader in it.
// Ports: 6.824 lab 2A TestReElection (second half); Raft paper §5.2,
// dissertation §6.2 and §9.6.
#[test]
fn no_leader_is_elected_without_a_quorum() {
    run_seeds(&[1, 2, 3], |seed| {
        for voters in [3, 5] {
            no_leader_without_quorum(seed, voters)?;
        }
        Ok(())
    });
}

fn no_leader_without_quorum(seed: u64, voters: u64) -> ScenarioResult<()> {
    let mut cluster = cluster(voters, seed);
    let leader = cluster.wait_for_leader(election_timeouts(&cluster, 10))?;
    let followers: Vec<u64> = (1..=voters).filter(|&id| id != leader.0).collect();
    let minority_followers = usize::try_from((voters - 1) / 2 - 1).expect("small");
    let mut minority = vec![leader.0];
    minority.extend_from_slice(&followers[..minority_followers]);
    cluster.partition_sides(&[&minority]);
    let term = cluster.max_term();
    cluster.wait_until(
        "the minority leader steps down",
        election_timeouts(&cluster, 2) + 1,
        |c| c.leaders().is_empty(),
    )?;
    for _ in 0..election_timeouts(&cluster, 50) {
        cluster.run_ticks(1)?;
        ensure(cluster.leaders().is_empty(), || {
            format!(
                "{voters} nodes, no quorum, yet leaders {:?} at tick {}",
                cluster.leaders(),
                cluster.now
            )
        })?;
        ensure(cluster.max_term() == term, || {
            format!(
                "term rose from {term} to {} without a quorum",
                cluster.max_term()
            )
        })?;
    }
    let quorum = usize::try_from(voters / 2 + 1).expect("small");
    let majority: Vec<u64> = (1..=voters).take(quorum).collect();
    cluster.partition_sides(&[&majority]);
    let side: Vec<NodeId> = majority.iter().copied().map(NodeId).collect();
    cluster.wait_for_leader_among(&side, term, election_timeouts(&cluster, 10))?;
    Ok(())
}

// Goal: with 7 nodes and 3 of them repeatedly cut off at random, there is
// never more than one leader per term, and a leader exists whenever a
// majority is connected.
// Method: 30 rounds; each isolates 3 random nodes (each on its own, so the
// other 4 form the only majority), waits for a leader of the majority's
// highest term inside the majority, runs a random part of an election
// timeout, and heals. Leaders per term are checked after every tick.
// Ports: 6.824 lab 2A TestManyElections; Raft paper §5.2 (Election
// Safety, Figure 3).
#[test]
fn many_elections_keep_one_leader_per_term() {
    run_seeds(&[1, 2, 3], |seed| {
        let mut cluster = cluster(7, seed);
        cluster.wait_for_leader(election_timeouts(&cluster, 10))?;
        for _ in 0..30 {
            let mut ids: Vec<NodeId> = cluster.all_ids().into_iter().collect();
            ids.shuffle(cluster.rng());
            let majority: Vec<u64> = ids[3..].iter().map(|id| id.0).collect();
            cluster.partition_sides(&[&majority]);
            let side = &ids[3..];
            let deadline = election_timeouts(&cluster, 10);
            wait_checked(
                &mut cluster,
                "the connected majority has a leader",
                deadline,
                |c| c.leader_among(side).is_some(),
            )?;
            let election_ticks = election_timeouts(&cluster, 1);
            let ticks = cluster.rng().random_range(0..election_ticks);
            run_checked(&mut cluster, ticks)?;
            cluster.heal();
        }
        let all: Vec<NodeId> = cluster.all_ids().into_iter().collect();
        let deadline = election_timeouts(&cluster, 10);
        wait_checked(
            &mut cluster,
            "the healed cluster has a leader",
            deadline,
            |c| c.leader_among(&all).is_some(),
        )
    });
}
