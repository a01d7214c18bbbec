//! Membership change and leadership transfer scenarios on the
//! deterministic simulator (Raft dissertation §4.1 single-server changes,
//! with etcd's learners; §3.10 leadership transfer). The 6.824 labs have
//! no such tests; these follow the dissertation. Every run uses fixed
//! seeds; a failure names its seed (`SEED=<seed> ...`).

mod common;

use std::collections::BTreeSet;

use common::{election_timeouts, ensure, node_after, run_seeds};
use raft::core::{
    ConfChange, Config, Entry, EntryKind, LogIndex, Membership, Message, MessageBody, Node, NodeId,
    ProposalId, Role, Term,
};
use raft::sim::cluster::{Cluster, ClusterConfig, NodeEvent};
use raft::sim::network::NetworkFaults;
use raft::sim::scenario::ScenarioResult;
use raft::storage::{MemStorage, Storage};

/// A proposed put of a key no other proposal writes.
type Put = (ProposalId, String, String);

/// Returns a reliable cluster of `voters` nodes with the default config.
fn cluster(voters: u64, seed: u64) -> Cluster {
    Cluster::new(ClusterConfig::new(voters), NetworkFaults::reliable(), seed)
}

/// Returns whether `membership` reflects `change`.
fn in_effect(membership: &Membership, change: ConfChange) -> bool {
    match change {
        ConfChange::AddLearner(node) => membership.learners.contains(&node),
        ConfChange::PromoteLearner(node) => membership.voters.contains(&node),
        ConfChange::RemoveNode(node) => !membership.contains(node),
    }
}

/// Proposes `change` at the leader until its membership reflects it
/// (refusals pass: no leader yet, a change pending, a learner catching
/// up), and waits until `count` live nodes apply it; meanwhile a put is
/// proposed at the leader every other tick (recorded in `puts`).
fn change_under_load(
    cluster: &mut Cluster,
    change: ConfChange,
    count: usize,
    puts: &mut Vec<Put>,
) -> ScenarioResult<()> {
    let applied_by = |c: &Cluster| {
        c.live_ids()
            .into_iter()
            .filter(|&id| in_effect(&c.core(id).expect("live").status().membership, change))
            .count()
    };
    let mut refusal = None;
    for tick in 0..election_timeouts(cluster, 30) {
        if applied_by(cluster) >= count {
            return Ok(());
        }
        if let Some(leader) = cluster.leader() {
            if tick % 2 == 0 {
                let key = format!("p{}", puts.len());
                if let Ok(put) = cluster.propose_put(leader, &key, "v") {
                    puts.push((put, key, "v".into()));
                }
            }
            if !in_effect(
                &cluster.core(leader).expect("live").status().membership,
                change,
            ) {
                refusal = cluster.propose_conf_change(leader, change).err();
            }
        }
        cluster.run_ticks(1)?;
    }
    Err(format!(
        "{change:?} applied by {} of {count} nodes by tick {} (last refusal {refusal:?})",
        applied_by(cluster),
        cluster.now
    ))
}

/// Checks that every live member reports exactly `voters` and no
/// learners.
fn check_membership(cluster: &Cluster, voters: &BTreeSet<NodeId>) -> ScenarioResult<()> {
    for &id in voters {
        let membership = cluster
            .core(id)
            .ok_or(format!("voter {id} is down"))?
            .status()
            .membership;
        ensure(
            membership.voters == *voters && membership.learners.is_empty(),
            || format!("node {id} has membership {membership:?}, expected voters {voters:?}"),
        )?;
    }
    Ok(())
}

// Goal: a new node joins as a learner, catches up, is promoted to voter,
// and an old voter is removed, while puts keep committing throughout.
// Method: 3 nodes; at the leader: AddLearner(4), PromoteLearner(4) (retried
// while the learner is still catching up), RemoveNode of an old follower;
// each change must be applied by every member before the next; a put is
// proposed every other tick throughout. Then the membership on every
// member is {the two old voters left, 4} with no learner, the removed node
// is shut down, a put commits on the three, and every put is on every
// member or on none.
// Ports: Raft dissertation §4.1 (single-server changes) and §4.2.1
// (catching up new servers); etcd learners.
#[test]
fn learner_is_added_promoted_and_old_voter_removed_under_load() {
    run_seeds(&[1, 2, 3, 4], |seed| {
        let mut cluster = cluster(3, seed);
        let deadline = election_timeouts(&cluster, 10);
        cluster.put_committed("k0", "v0", 3, deadline)?;
        let mut puts = Vec::new();
        let newcomer = NodeId(4);
        change_under_load(&mut cluster, ConfChange::AddLearner(newcomer), 4, &mut puts)?;
        change_under_load(
            &mut cluster,
            ConfChange::PromoteLearner(newcomer),
            4,
            &mut puts,
        )?;
        let leader = cluster.wait_for_leader(deadline)?;
        let removed = node_after(leader, 1, 3);
        change_under_load(&mut cluster, ConfChange::RemoveNode(removed), 3, &mut puts)?;
        ensure(!cluster.is_live(removed), || {
            format!("removed node {removed} still runs")
        })?;
        let voters: BTreeSet<NodeId> = [1, 2, 3, 4]
            .into_iter()
            .map(NodeId)
            .filter(|&id| id != removed)
            .collect();
        cluster.put_committed("k1", "v1", 3, deadline)?;
        cluster.wait_caught_up(deadline)?;
        check_membership(&cluster, &voters)?;
        cluster.expect_value_everywhere("k0", "v0")?;
        cluster.expect_value_everywhere("k1", "v1")?;
        let committed = puts
            .iter()
            .filter(|(p, ..)| cluster.applied_count(*p) == 3)
            .count();
        ensure(committed > 0, || {
            "no put committed during the changes".into()
        })?;
        puts.iter().try_for_each(|(proposal, key, value)| {
            cluster.expect_put_outcome(*proposal, key, value)
        })
    });
}

// Goal: a leader that removes itself steps down once the change applies,
// the two others elect a leader among themselves and keep committing.
// Method: 3 nodes; RemoveNode(leader) proposed at the leader; wait until
// it is applied by the two others (the simulator then shuts the removed
// node down); a leader of a higher term among the two emerges, the
// membership of both is the two of them, and a put commits on both.
// Ports: Raft dissertation §4.2.2 (removing the current leader).
#[test]
fn removed_leader_steps_down_and_the_rest_elect_a_leader() {
    run_seeds(&[1, 2, 3, 4], |seed| {
        let mut cluster = cluster(3, seed);
        let deadline = election_timeouts(&cluster, 10);
        cluster.put_committed("k0", "v0", 3, deadline)?;
        let leader = cluster.wait_for_leader(deadline)?;
        let term = cluster.term_of(leader);
        let mut puts = Vec::new();
        change_under_load(&mut cluster, ConfChange::RemoveNode(leader), 2, &mut puts)?;
        let rest: Vec<NodeId> = [1, 2, 3]
            .into_iter()
            .map(NodeId)
            .filter(|&id| id != leader)
            .collect();
        cluster.wait_until("the removed leader is shut down", deadline, |c| {
            !c.is_live(leader)
        })?;
        cluster.wait_for_leader_among(&rest, term, deadline)?;
        cluster.put_committed("k1", "v1", 2, deadline)?;
        cluster.wait_caught_up(deadline)?;
        check_membership(&cluster, &rest.iter().copied().collect())?;
        cluster.expect_value_everywhere("k1", "v1")?;
        puts.iter().try_for_each(|(proposal, key, value)| {
            cluster.expect_put_outcome(*proposal, key, value)
        })
    });
}

/// Starts a transfer from `leader` to `target` and waits for `target` to
/// lead within one election timeout; checks the term rose by one and the
/// old leader follows.
fn transfer(cluster: &mut Cluster, leader: NodeId, target: NodeId) -> ScenarioResult<()> {
    let term = cluster.term_of(leader);
    cluster
        .core_mut(leader)
        .expect("live")
        .transfer_leader(target)
        .map_err(|error| format!("transfer to {target} refused: {error}"))?;
    let deadline = election_timeouts(cluster, 1);
    cluster.wait_until("the target leads", deadline, |c| {
        c.core(target)
            .is_some_and(|core| core.status().role == Role::Leader)
    })?;
    let new_term = cluster.term_of(target);
    ensure(new_term == Term(term.0 + 1), || {
        format!("transfer moved the term from {term} to {new_term}")
    })?;
    ensure(cluster.leaders() == vec![(target, new_term.0)], || {
        format!("leaders after the transfer: {:?}", cluster.leaders())
    })
}

// Goal: leadership moves to a caught-up follower within an election
// timeout, in the very next term, and the cluster keeps committing.
// Method: 3 nodes; a put on all; transfer_leader to a follower; it leads
// within one election timeout at term + 1, nobody else leads; a put
// commits on all three.
// Ports: Raft dissertation §3.10 (leadership transfer, TimeoutNow).
#[test]
fn leadership_transfers_to_a_caught_up_follower() {
    run_seeds(&[1, 2, 3, 4], |seed| {
        let mut cluster = cluster(3, seed);
        let deadline = election_timeouts(&cluster, 10);
        cluster.put_committed("k0", "v0", 3, deadline)?;
        let leader = cluster.wait_for_leader(deadline)?;
        transfer(&mut cluster, leader, node_after(leader, 1, 3))?;
        cluster.put_committed("k1", "v1", 3, deadline)?;
        cluster.expect_value_everywhere("k1", "v1")
    });
}

// Goal: a transfer to a lagging follower first brings it up to date, then
// hands over; proposals are refused while the transfer runs.
// Method: 3 nodes; a follower is cut off while 10 puts commit on the
// others; heal and transfer to it at once: a proposal at the leader is
// refused with TransferInProgress; the target leads within one election
// timeout at term + 1 and holds every put.
// Ports: Raft dissertation §3.10.
#[test]
fn leadership_transfer_catches_up_a_lagging_target_first() {
    run_seeds(&[1, 2, 3, 4], |seed| {
        let mut cluster = cluster(3, seed);
        let deadline = election_timeouts(&cluster, 10);
        let leader = cluster.wait_for_leader(deadline)?;
        let target = node_after(leader, 1, 3);
        cluster.isolate(target);
        for i in 0..10 {
            cluster.put_committed(&format!("k{i}"), &format!("v{i}"), 2, deadline)?;
        }
        cluster.heal();
        let leader = cluster.wait_for_leader(deadline)?;
        cluster
            .core_mut(leader)
            .expect("live")
            .transfer_leader(target)
            .map_err(|error| format!("transfer refused: {error}"))?;
        let refused = cluster.propose_put(leader, "during", "transfer");
        ensure(
            refused
                .as_ref()
                .is_err_and(|e| e.contains("transfer in progress")),
            || format!("proposal during a transfer: {refused:?}"),
        )?;
        transfer(&mut cluster, leader, target)?;
        cluster.wait_caught_up(deadline)?;
        (0..10).try_for_each(|i| {
            let value = cluster.value_on(target, &format!("k{i}"));
            ensure(value == format!("v{i}"), || {
                format!("new leader has k{i}={value:?}")
            })
        })
    });
}

// Goal: a leader that removed itself, and so counts only the voter left,
// never answers a read on its own: that voter is another node, which may
// already lead a newer term and have committed writes the removed leader
// has not seen.
// Method: 2 voters; RemoveNode(leader) proposed at the leader; the moment
// the leader applies its removal (voters now the other node only, the
// leader still leading for its hand-off) it is isolated, so the other node
// neither learns the removal committed nor answers any heartbeat. A read
// requested at the removed leader then must not be released for several
// election timeouts.
// Found by: swarm SEED=6362 (a group grown from 1 voter to {1, 2}, then
// shrunk to {2} by removing leader 1, which answered a read at once with
// the single-voter fast path after node 2 had committed a write in a newer
// term).
#[test]
fn removed_leader_does_not_answer_reads_alone() {
    run_seeds(&[1, 2, 3, 4], |seed| {
        let mut cluster = cluster(2, seed);
        let deadline = election_timeouts(&cluster, 10);
        cluster.put_committed("k0", "v0", 2, deadline)?;
        let leader = cluster.wait_for_leader(deadline)?;
        let removal = ConfChange::RemoveNode(leader);
        let mut proposed = false;
        let removed_in_time = |c: &Cluster| {
            c.core(leader)
                .is_some_and(|core| in_effect(&core.status().membership, removal))
        };
        for _ in 0..deadline {
            if removed_in_time(&cluster) {
                break;
            }
            if !proposed {
                proposed = cluster.propose_conf_change(leader, removal).is_ok();
            }
            cluster.run_ticks(1)?;
        }
        ensure(removed_in_time(&cluster), || {
            format!("node {leader} did not apply its own removal")
        })?;
        cluster.isolate(leader);
        let status = cluster.core(leader).expect("live").status();
        ensure(status.role == Role::Leader, || {
            format!("node {leader} stopped leading at once: {status:?}")
        })?;
        ensure(status.membership.voters.len() == 1, || {
            format!("expected one voter left, got {:?}", status.membership)
        })?;
        cluster.take_events();
        const CONTEXT: u64 = 6362;
        cluster
            .core_mut(leader)
            .expect("live")
            .read_index(CONTEXT)
            .map_err(|error| format!("read refused: {error}"))?;
        for _ in 0..election_timeouts(&cluster, 5) {
            cluster.run_ticks(1)?;
            let released = cluster.take_events().into_iter().any(|event| {
                matches!(event, NodeEvent::ReadReady { node, read }
                    if node == leader && read.context == CONTEXT)
            });
            ensure(!released, || {
                format!(
                    "removed leader {leader} answered a read alone at tick {}",
                    cluster.now
                )
            })?;
        }
        Ok(())
    });
}

// Goal: a leader that committed its own removal and crashed before the
// last voter heard of the commit does not strand that voter. Back as a
// follower with a longer log, the removed node refuses its vote (its log is
// more up to date), and the voter, still on the old membership, needs that
// vote; it must learn the commit from the refusal, apply the change and
// lead alone.
// Method: 2 voters; RemoveNode(leader) proposed at the leader; once the
// follower holds the change, the link leader -> follower is cut so it
// never hears the commit; the leader appends one more entry, applies its
// removal, crashes and restarts; links heal. The follower must lead
// within 10 election timeouts with itself the only voter, and a put
// commits. (Found by the swarm, SEED=14477.)
// Ports: Raft dissertation §4.2.2 (removing the current leader).
#[test]
fn removed_leader_crashing_after_commit_does_not_strand_the_last_voter() {
    run_seeds(&[1, 2, 3, 4], |seed| {
        let mut cluster = cluster(2, seed);
        let deadline = election_timeouts(&cluster, 10);
        cluster.put_committed("k0", "v0", 2, deadline)?;
        let leader = cluster.wait_for_leader(deadline)?;
        let follower = node_after(leader, 1, 2);
        let removal = ConfChange::RemoveNode(leader);
        let change = cluster
            .propose_conf_change(leader, removal)
            .map_err(|error| format!("removal refused: {error}"))?;
        cluster.wait_until("the follower holds the removal", deadline, |c| {
            c.core(follower)
                .is_some_and(|core| core.status().last_index >= change.index)
        })?;
        cluster.network.cut_link(leader, follower);
        cluster.propose_put(leader, "k1", "never committed")?;
        cluster.wait_until("the leader applies its removal", deadline, |c| {
            c.core(leader)
                .is_some_and(|core| in_effect(&core.status().membership, removal))
        })?;
        let stale = cluster.core(follower).expect("live").status();
        ensure(stale.commit < change.index, || {
            format!("the follower learned the commit too early: {stale:?}")
        })?;
        cluster.crash(leader);
        cluster.restart(leader);
        cluster.heal();
        cluster.wait_until("the last voter leads", deadline, |c| {
            c.core(follower).is_some_and(|core| {
                let status = core.status();
                status.role == Role::Leader
                    && status.membership.voters == BTreeSet::from([follower])
            })
        })?;
        cluster.put_committed("k2", "v2", 1, deadline)?;
        Ok(())
    });
}

fn conf_change_entry(index: u64, change: ConfChange) -> Entry {
    Entry {
        term: Term(1),
        index: LogIndex(index),
        kind: EntryKind::ConfChange,
        data: change.encode(),
    }
}

// Two membership changes committed at once reach the owner in two
// Readies, each ending with its change, so the membership the owner
// saves after each is the one in force at that change's index.
#[test]
fn a_ready_holds_at_most_one_membership_change_as_its_last_entry() {
    let voters = Membership::with_voters([NodeId(1), NodeId(2), NodeId(3)]);
    let mut node =
        Node::new(Config::new(NodeId(2)), MemStorage::new(voters), 7).expect("valid configuration");
    node.step(Message {
        from: NodeId(1),
        to: NodeId(2),
        term: Term(1),
        body: MessageBody::AppendEntries {
            prev_index: LogIndex(1),
            prev_term: Term(1),
            entries: vec![
                conf_change_entry(2, ConfChange::AddLearner(NodeId(4))),
                conf_change_entry(3, ConfChange::PromoteLearner(NodeId(4))),
            ],
            commit: LogIndex(3),
        },
    });
    let mut applied = Vec::new();
    while let Some(mut ready) = node.ready() {
        node.storage_mut()
            .persist(&ready.persist_batch())
            .expect("memory storage");
        let entries = std::mem::take(&mut ready.committed_entries);
        if let Some(last) = entries.last() {
            let changes = entries
                .iter()
                .filter(|entry| entry.kind == EntryKind::ConfChange)
                .count();
            assert!(changes <= 1, "{changes} membership changes in one Ready");
            let membership = node.status().membership;
            applied.push((
                last.index,
                membership.learners.len(),
                membership.voters.len(),
            ));
        }
        node.advance();
    }
    assert_eq!(
        applied,
        vec![(LogIndex(2), 1, 3), (LogIndex(3), 0, 4)],
        "each Ready's membership is the one at its last change"
    );
}
