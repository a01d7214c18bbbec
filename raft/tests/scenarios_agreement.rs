//! Log agreement scenarios on the deterministic simulator, ported from MIT
//! 6.824 lab 2B (Raft paper §5.3 log replication, §5.4 safety): commits
//! with and without failed followers, without a quorum, stale leaders,
//! fast backtracking and message-count bounds. Every run uses fixed seeds;
//! a failure names its seed (`SEED=<seed> ...`).

mod common;

use common::{election_timeouts, ensure, node_after, run_seeds};
use raft::core::{NodeId, ProposalId, Term};
use raft::sim::cluster::{Cluster, ClusterConfig};
use raft::sim::network::NetworkFaults;
use raft::sim::scenario::ScenarioResult;

/// A proposed put of a key no other proposal writes.
type Put = (ProposalId, String, String);

/// Returns a reliable cluster of `voters` nodes with the default config.
fn cluster(voters: u64, seed: u64) -> Cluster {
    Cluster::new(ClusterConfig::new(voters), NetworkFaults::reliable(), seed)
}

/// Returns `voters` as a node count.
fn count(voters: u64) -> usize {
    usize::try_from(voters).expect("small cluster")
}

/// Proposes `count` puts `<prefix><i>` = `v<i>` at `at` within one tick.
fn propose_many(
    cluster: &mut Cluster,
    at: NodeId,
    prefix: &str,
    count: usize,
) -> ScenarioResult<Vec<Put>> {
    (0..count)
        .map(|i| {
            let (key, value) = (format!("{prefix}{i}"), format!("v{i}"));
            let proposal = cluster.propose_put(at, &key, &value)?;
            Ok((proposal, key, value))
        })
        .collect()
}

// Goal: every put is applied by every node, with the same value, at
// consecutive log indexes.
// Method: 3 and 5 nodes on a reliable network; 20 puts one after the
// other, each waited for on all nodes; then every value is checked on
// every node.
// Ports: 6.824 lab 2B TestBasicAgree; Raft paper §5.3.
#[test]
fn basic_agreement_applies_every_put_on_all_nodes() {
    run_seeds(&[1, 2, 3], |seed| {
        for voters in [3, 5] {
            let mut cluster = cluster(voters, seed);
            let deadline = election_timeouts(&cluster, 10);
            let mut previous: Option<ProposalId> = None;
            for i in 0..20 {
                let proposal = cluster.put_committed(
                    &format!("k{i}"),
                    &format!("v{i}"),
                    count(voters),
                    deadline,
                )?;
                if let Some(previous) = previous {
                    ensure(proposal.index == previous.index.next(), || {
                        format!(
                            "put {i} at index {}, previous at {}",
                            proposal.index, previous.index
                        )
                    })?;
                }
                previous = Some(proposal);
            }
            for i in 0..20 {
                cluster.expect_value_everywhere(&format!("k{i}"), &format!("v{i}"))?;
            }
        }
        Ok(())
    });
}

/// How a follower is failed.
#[derive(Clone, Copy, Debug)]
enum FollowerFault {
    /// Cut from the network, still running.
    Isolate,
    /// Crashed, its disk kept.
    Crash,
}

// Goal: with one of three nodes failed, the other two still commit; when
// it comes back it catches up on everything it missed.
// Method: 3 nodes; one put on all; fail a follower (isolated, or crashed);
// 5 puts committed by the leader and the remaining follower; bring the
// follower back; a put commits on all three, and every value is on every
// node.
// Ports: 6.824 lab 2B TestFailAgree; Raft paper §5.3 ("if followers
// crash ... the leader retries AppendEntries indefinitely").
#[test]
fn agreement_continues_with_one_failed_follower() {
    run_seeds(&[1, 2, 3], |seed| {
        for fault in [FollowerFault::Isolate, FollowerFault::Crash] {
            let mut cluster = cluster(3, seed);
            let deadline = election_timeouts(&cluster, 10);
            cluster.put_committed("k0", "v0", 3, deadline)?;
            let follower = node_after(cluster.wait_for_leader(deadline)?, 1, 3);
            match fault {
                FollowerFault::Isolate => cluster.isolate(follower),
                FollowerFault::Crash => cluster.crash(follower),
            }
            for i in 1..=5 {
                cluster.put_committed(&format!("k{i}"), &format!("v{i}"), 2, deadline)?;
            }
            cluster.heal();
            cluster.restart(follower);
            cluster.put_committed("k6", "v6", 3, deadline)?;
            cluster.wait_caught_up(deadline)?;
            for i in 0..=6 {
                cluster.expect_value_everywhere(&format!("k{i}"), &format!("v{i}"))?;
            }
        }
        Ok(())
    });
}

// Goal: a leader cut off from a majority cannot commit; after the
// partition heals its proposal either commits everywhere or is replaced
// everywhere, never half-applied.
// Method: 5 nodes; one put on all; keep the leader with one follower and
// isolate the other three (each alone, so no side has a quorum); propose
// at the leader and run 5 election timeouts: no node applies it and no
// node's commit index reaches it. Heal; a new put commits on all five; the
// first proposal's key then holds its value on every node if it committed
// and is absent on every node if not.
// Ports: 6.824 lab 2B TestFailNoAgree; Raft paper §5.3, §5.4.2.
#[test]
fn no_agreement_without_quorum() {
    run_seeds(&[1, 2, 3, 4], |seed| {
        let mut cluster = cluster(5, seed);
        let deadline = election_timeouts(&cluster, 10);
        cluster.put_committed("k0", "v0", 5, deadline)?;
        let leader = cluster.wait_for_leader(deadline)?;
        cluster.partition_sides(&[&[leader.0, node_after(leader, 1, 5).0]]);
        let proposal = cluster.propose_put(leader, "k1", "minority")?;
        cluster.run_ticks(election_timeouts(&cluster, 5))?;
        ensure(cluster.applied_count(proposal) == 0, || {
            "a proposal without quorum was applied".into()
        })?;
        let committed = cluster
            .live_ids()
            .iter()
            .map(|&id| cluster.commit_of(id))
            .max()
            .unwrap_or_default();
        ensure(committed < proposal.index, || {
            format!(
                "commit index reached {committed} without quorum (proposal at {})",
                proposal.index
            )
        })?;
        cluster.heal();
        cluster.put_committed("k2", "v2", 5, deadline)?;
        cluster.wait_caught_up(deadline)?;
        cluster.expect_put_outcome(proposal, "k1", "minority")?;
        cluster.expect_value_everywhere("k2", "v2")
    });
}

// Goal: many proposals made at once all commit, travel as one batch (one
// append per follower) and commit together.
// Method: 3 nodes; after a first put, propose 50 puts at the leader in the
// same tick; they get consecutive indexes; step until all nodes applied
// the last one, checking after every tick that the leader's commit index
// never stops inside the batch; count the appends sent meanwhile: per
// follower, one carrying the batch, one carrying the new commit index,
// and one per heartbeat answered while the batch was unacknowledged (the
// leader then re-probes, as etcd does, in case the append was lost).
// Ports: 6.824 lab 2B TestConcurrentStarts; Raft paper §5.3 (batching as
// in the dissertation §10.2.1).
#[test]
fn concurrent_proposals_commit_in_one_batch() {
    run_seeds(&[1, 2, 3], |seed| {
        let mut cluster = cluster(3, seed);
        let deadline = election_timeouts(&cluster, 10);
        cluster.put_committed("k0", "v0", 3, deadline)?;
        let leader = cluster.wait_for_leader(deadline)?;
        let (appends_before, start) = (cluster.messages_sent("append"), cluster.now);
        let puts = propose_many(&mut cluster, leader, "c", 50)?;
        let (first, last) = (puts[0].0.index, puts[49].0.index);
        ensure(last.0 - first.0 == 49, || {
            format!("batch spans indexes {first}..={last}")
        })?;
        for _ in 0..deadline {
            if cluster.applied_count(puts[49].0) == 3 {
                break;
            }
            cluster.run_ticks(1)?;
            let commit = cluster.commit_of(leader);
            ensure(commit < first || commit >= last, || {
                format!("leader committed {commit}, inside the batch {first}..={last}")
            })?;
        }
        ensure(cluster.applied_count(puts[49].0) == 3, || {
            "the batch was not applied everywhere".into()
        })?;
        let appends = cluster.messages_sent("append") - appends_before;
        let heartbeats = (cluster.now - start) / u64::from(cluster.config.heartbeat_ticks) + 1;
        let appends_max = 2 * (2 + heartbeats);
        ensure(appends <= appends_max, || {
            format!("{appends} appends for one batch to 2 followers (bound {appends_max})")
        })?;
        for (_, key, value) in &puts {
            cluster.expect_value_everywhere(key, value)?;
        }
        Ok(())
    });
}

// Goal: a leader partitioned away with uncommitted entries, replaced by a
// new leader that commits other entries, loses those entries when it
// rejoins: its log is overwritten and its proposals never apply.
// Method: 3 nodes; a put on all; isolate the leader and propose 3 puts at
// it; the other two elect a leader and commit "b"; isolate that leader and
// reconnect the old one with the third node, which must lead (its log is
// more up-to-date) and commits "c"; heal, a last put commits on all three.
// The old leader's keys are absent everywhere, "b" and "c" present.
// Ports: 6.824 lab 2B TestRejoin; Raft paper §5.3 (Figure 7), §5.4.1.
#[test]
fn stale_leader_entries_are_discarded_on_rejoin() {
    run_seeds(&[1, 2, 3, 4], |seed| {
        let mut cluster = cluster(3, seed);
        let deadline = election_timeouts(&cluster, 10);
        cluster.put_committed("a", "1", 3, deadline)?;
        let old = cluster.wait_for_leader(deadline)?;
        cluster.isolate(old);
        let stale = propose_many(&mut cluster, old, "stale", 3)?;
        let others: Vec<NodeId> = cluster
            .all_ids()
            .into_iter()
            .filter(|&id| id != old)
            .collect();
        let second = cluster.wait_for_leader_among(&others, cluster.term_of(old), deadline)?;
        cluster.put_committed("b", "2", 2, deadline)?;
        let third = others
            .iter()
            .copied()
            .find(|&id| id != second)
            .expect("3 nodes");
        cluster.partition_sides(&[&[old.0, third.0], &[second.0]]);
        let leader =
            cluster.wait_for_leader_among(&[old, third], cluster.term_of(second), deadline)?;
        ensure(leader == third, || {
            format!("node {leader} led, yet node {third} has the newer log")
        })?;
        let c = cluster.put_committed("c", "3", 2, deadline)?;
        for (proposal, ..) in &stale {
            ensure(
                cluster.invariants.committed_term(proposal.index) != Some(proposal.term),
                || format!("stale proposal {proposal:?} committed"),
            )?;
        }
        cluster.heal();
        cluster.wait_applied(c, 3, deadline)?;
        cluster.put_committed("d", "4", 3, deadline)?;
        cluster.wait_caught_up(deadline)?;
        for (key, value) in [("a", "1"), ("b", "2"), ("c", "3"), ("d", "4")] {
            cluster.expect_value_everywhere(key, value)?;
        }
        stale
            .iter()
            .try_for_each(|(_, key, _)| cluster.expect_value_everywhere(key, ""))
    });
}

// Goal: leaders repair long divergent follower logs quickly: fast
// backtracking skips a whole conflicting term per rejection instead of
// one entry per round trip.
// Method: 5 nodes; 4 rounds, each cutting the leader and one follower off
// (they accept 50 proposals that cannot commit) while the other three,
// exactly one of which has the latest log, elect a leader and commit 50;
// the next round cuts off that leader and a follower. Finally heal: a put
// commits on all five; count the appends sent until every node caught up.
// The two followers of the last minority each diverge by 50 entries; the
// bound allows, per follower, a few probes (one per conflicting term),
// the messages carrying the missing entries and the commit updates —
// far below one append per divergent entry (100 in all).
// Ports: 6.824 lab 2B TestBackup; Raft paper §5.3 (the optimization of
// rejected AppendEntries by conflicting term).
#[test]
fn fast_backtracking_repairs_divergent_logs() {
    run_seeds(&[1, 2, 3], |seed| {
        let mut cluster = cluster(5, seed);
        let deadline = election_timeouts(&cluster, 10);
        cluster.put_committed("k0", "v0", 5, deadline)?;
        let mut puts = Vec::new();
        let mut leader = cluster.wait_for_leader(deadline)?;
        let mut up_to_date: Vec<NodeId> = cluster
            .all_ids()
            .into_iter()
            .filter(|&id| id != leader)
            .collect();
        for round in 0..4 {
            let minority = [leader, up_to_date[0]];
            let majority: Vec<NodeId> = cluster
                .all_ids()
                .into_iter()
                .filter(|id| !minority.contains(id))
                .collect();
            let side: Vec<u64> = majority.iter().map(|id| id.0).collect();
            cluster.partition_sides(&[&[minority[0].0, minority[1].0], &side]);
            puts.extend(propose_many(
                &mut cluster,
                leader,
                &format!("lost{round}-"),
                50,
            )?);
            let term = cluster.term_of(leader);
            leader = cluster.wait_for_leader_among(&majority, term, deadline)?;
            let won = propose_many(&mut cluster, leader, &format!("won{round}-"), 50)?;
            cluster.wait_applied(won[49].0, 3, deadline)?;
            puts.extend(won);
            up_to_date = majority.into_iter().filter(|&id| id != leader).collect();
        }
        let appends_before = cluster.messages_sent("append");
        cluster.heal();
        cluster.put_committed("final", "v", 5, deadline)?;
        cluster.wait_caught_up(deadline)?;
        let appends = cluster.messages_sent("append") - appends_before;
        ensure(appends <= repair_appends_max(&cluster), || {
            format!("{appends} appends to repair 2 followers diverging by 50 entries each")
        })?;
        puts.iter().try_for_each(|(proposal, key, value)| {
            cluster.expect_put_outcome(*proposal, key, value)
        })
    });
}

/// Returns the appends the final repair of the backup scenario may take.
/// Per divergent follower (2): one probe per term the run went through
/// (each rejection's hint skips at least one whole conflicting term), the
/// messages carrying the 100 entries it lacks (an entry here is under 64
/// bytes, so `message_bytes_max` bounds how many fit in one), the final
/// put and its commit update. Per up-to-date follower (2): the final put
/// and its commit update.
fn repair_appends_max(cluster: &Cluster) -> u64 {
    let terms = cluster.max_term().0;
    let entry_messages = (100 * 64u64).div_ceil(cluster.config.message_bytes_max);
    2 * (terms + entry_messages + 2) + 2 * 2
}

// Goal: a stable cluster sends a bounded number of messages: when idle,
// only heartbeats and their responses; per committed batch, a constant
// number of appends and responses per follower.
// Method: 3 nodes; after a first put, run 100 idle ticks and count every
// message: at most (ticks / heartbeat_ticks + 1) heartbeat intervals times
// 2 followers times 2 (heartbeat and response), none of another kind.
// Then commit 10 batches of 10 puts (proposed in one tick each) and count
// the messages until all nodes applied each: per follower 2 appends (the
// entries, the commit index) and 2 responses, plus per heartbeat interval
// the batch took a heartbeat, its response, and the empty append (and
// response) a leader sends when a heartbeat answer shows the follower
// still lagging.
// Ports: 6.824 lab 2B TestCount; Raft paper §5.3.
#[test]
fn message_counts_are_bounded_per_heartbeat_and_per_batch() {
    run_seeds(&[1, 2, 3], |seed| {
        let mut cluster = cluster(3, seed);
        let deadline = election_timeouts(&cluster, 10);
        cluster.put_committed("k0", "v0", 3, deadline)?;
        let followers = 2;
        let heartbeat_ticks = u64::from(cluster.config.heartbeat_ticks);
        let idle_ticks = 100;
        let before = cluster.network.sent.clone();
        let total_before = cluster.network.sent_total();
        cluster.run_ticks(idle_ticks)?;
        let idle = cluster.network.sent_total() - total_before;
        let idle_max = (idle_ticks / heartbeat_ticks + 1) * followers * 2;
        ensure(idle <= idle_max, || {
            format!("{idle} messages in {idle_ticks} idle ticks (bound {idle_max})")
        })?;
        for (kind, count) in &cluster.network.sent {
            let grew = *count > before.get(kind).copied().unwrap_or(0);
            ensure(!grew || kind.starts_with("heartbeat"), || {
                format!("idle cluster sent {kind}")
            })?;
        }
        let leader = cluster.wait_for_leader(deadline)?;
        for batch in 0..10 {
            let (total_before, start) = (cluster.network.sent_total(), cluster.now);
            let puts = propose_many(&mut cluster, leader, &format!("b{batch}-"), 10)?;
            cluster.wait_applied(puts[9].0, 3, deadline)?;
            let (sent, ticks) = (
                cluster.network.sent_total() - total_before,
                cluster.now - start,
            );
            let batch_max = followers * 4 + (ticks / heartbeat_ticks + 1) * followers * 4;
            ensure(sent <= batch_max, || {
                format!("{sent} messages for batch {batch} over {ticks} ticks (bound {batch_max})")
            })?;
        }
        ensure(
            cluster.term_of(leader) == cluster.max_term() && cluster.max_term() > Term(0),
            || "leadership changed in a stable cluster".into(),
        )
    });
}

// Goal: reads registered together are confirmed by one heartbeat round,
// not one round each (a replica group's Get barrier relies on it: many
// concurrent reads share one barrier).
// Method: 3 nodes on a reliable network; a put committed everywhere (the
// leader has committed in its own term); 100 reads registered on the
// leader between two Readies; the next Ready sends one heartbeat to each
// follower, and every read is released at or after the put's index.
#[test]
fn concurrent_reads_share_one_heartbeat_round() {
    const READS: u64 = 100;
    run_seeds(&[1, 2, 3], |seed| {
        let mut cluster = cluster(3, seed);
        let deadline = election_timeouts(&cluster, 10);
        let put = cluster.put_committed("k", "v", 3, deadline)?;
        let leader = cluster.leader().ok_or("no leader after the put")?;
        cluster
            .process_ready(leader)
            .map_err(|violation| format!("invariant broken: {violation}"))?;
        cluster.take_events();
        let before = cluster.network.sent_total();
        for context in 0..READS {
            cluster
                .core_mut(leader)
                .ok_or("the leader is down")?
                .read_index(context)
                .map_err(|error| format!("read {context} refused: {error}"))?;
        }
        cluster
            .process_ready(leader)
            .map_err(|violation| format!("invariant broken: {violation}"))?;
        let sent = cluster.network.sent_total() - before;
        ensure(sent == 2, || {
            format!("{READS} reads sent {sent} messages, not one heartbeat per follower")
        })?;
        let mut released = std::collections::BTreeSet::new();
        for _ in 0..election_timeouts(&cluster, 2) {
            cluster.run_ticks(1)?;
            for event in cluster.take_events() {
                if let raft::sim::cluster::NodeEvent::ReadReady { node, read } = event
                    && node == leader
                {
                    ensure(read.index >= put.index, || {
                        format!(
                            "read {} released at {} before the put's {}",
                            read.context, read.index, put.index
                        )
                    })?;
                    released.insert(read.context);
                }
            }
            if released.len() as u64 == READS {
                return Ok(());
            }
        }
        Err(format!("{} of {READS} reads released", released.len()))
    });
}
