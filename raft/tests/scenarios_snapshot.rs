//! Snapshot and log compaction scenarios on the deterministic simulator,
//! ported from MIT 6.824 lab 2D (Raft paper §7), with issue 15 §2's
//! design: compaction drops applied entries without copying anything, and
//! a lagging follower receives the leader's application state itself, read
//! on demand in chunks and written straight into its own state behind a
//! durable restore mark. Covered: compaction, chunked transfers to lagging
//! followers, snapshots under disconnects, crashes (also inside the Ready
//! loop and at each step of a restore) and an unreliable network; every
//! restore is checked whole against the reference state at its index (the
//! simulator's state machine safety), and the tests check each member's
//! state against the leader's at the end. Every run uses fixed seeds; a
//! failure names its seed (`SEED=<seed> ...`).

mod common;

use std::collections::BTreeSet;

use common::{election_timeouts, ensure, node_after, run_seeds};
use raft::core::{NodeId, ProposalId};
use raft::sim::cluster::{Cluster, ClusterConfig, CrashKind, CrashPoint};
use raft::sim::network::NetworkFaults;
use raft::sim::scenario::ScenarioResult;
use rand::Rng;

/// Entries between compactions in these scenarios (the lab's
/// `SnapShotInterval`).
const SNAPSHOT_INTERVAL: u64 = 10;

/// Returns a config of `voters` nodes compacting their logs every
/// [`SNAPSHOT_INTERVAL`] entries, whose snapshots are sent in chunks of
/// `chunk_bytes`, 16 at a time, and resumed after 6 ticks without
/// progress.
fn config(voters: u64, chunk_bytes: u64) -> ClusterConfig {
    let mut config = ClusterConfig::new(voters);
    config.compaction_interval = SNAPSHOT_INTERVAL;
    // A lost or refused chunk is sent again once the transfer stalls for
    // this long (a few heartbeat round trips), and up to 16 chunks travel
    // at once: under the crash rates below, leaders change every few
    // dozen ticks, and each new leader's transfer starts over.
    config.snapshot_stall_ticks = 6;
    config.snapshot_chunks_in_flight = 16;
    config.snapshot_chunk_bytes = chunk_bytes;
    config
}

/// Returns the entries in the log of `id` (compacted ones excluded).
fn log_length(cluster: &Cluster, id: NodeId) -> u64 {
    cluster.core(id).map_or(0, |core| {
        let status = core.status();
        (status.last_index.0 + 1).saturating_sub(status.first_index.0)
    })
}

/// Fails if a live node keeps more than `entries_max` entries: logs must
/// be compacted (the lab's MAXLOGSIZE check).
fn check_log_lengths(cluster: &Cluster, entries_max: u64) -> ScenarioResult<()> {
    for id in cluster.live_ids() {
        let length = log_length(cluster, id);
        ensure(length <= entries_max, || {
            format!(
                "node {id} keeps {length} entries (max {entries_max}) at tick {}",
                cluster.now
            )
        })?;
    }
    Ok(())
}

// Goal: with snapshots on, logs stay short on every node, the first index
// advances, and every value is intact.
// Method: 3 nodes, a snapshot every 10 entries; 100 puts each committed
// on all nodes, checking after each that no log holds more than one
// interval of entries; at the end every node's first index is past 90
// and every value is on every node.
// Ports: 6.824 lab 2D TestSnapshotBasic; Raft paper §7.
#[test]
fn snapshots_compact_logs_and_keep_values() {
    run_seeds(&[1, 2, 3], |seed| {
        let mut cluster = Cluster::new(config(3, 64), NetworkFaults::reliable(), seed);
        let deadline = election_timeouts(&cluster, 10);
        for i in 0..100 {
            cluster.put_committed(&format!("k{i}"), &format!("v{i}"), 3, deadline)?;
            check_log_lengths(&cluster, SNAPSHOT_INTERVAL)?;
        }
        cluster.wait_caught_up(deadline)?;
        for id in cluster.live_ids() {
            let first = cluster.core(id).expect("live").status().first_index;
            ensure(first.0 > 90, || {
                format!("node {id} still starts its log at {first}")
            })?;
        }
        (0..100)
            .try_for_each(|i| cluster.expect_value_everywhere(&format!("k{i}"), &format!("v{i}")))
    });
}

/// How the lagging follower misses entries.
#[derive(Clone, Copy, Debug)]
enum Lag {
    /// Isolated, still running.
    Isolated,
    /// Crashed, its disk kept.
    Crashed,
}

// Goal: a follower that fell behind the leader's compacted log catches up
// by the leader's state streamed in many small chunks, then by appends.
// Method: 3 nodes, compaction every 10 entries, 32-byte chunks; a put on
// all; a follower is isolated (or crashed); 60 puts commit on the other
// two, so the leader's log starts past the follower's last entry; the
// follower rejoins (or restarts) and applies the last put. It received at
// least as many chunks as the leader's state has 32-byte pieces (and more
// than one), its log now starts past its old end, and its whole state is
// the leader's.
// Ports: 6.824 lab 2D TestSnapshotInstall (single round); Raft paper §7
// (InstallSnapshot RPC, sent in chunks).
#[test]
fn lagging_follower_catches_up_by_a_chunked_snapshot() {
    run_seeds(&[1, 2, 3], |seed| {
        for lag in [Lag::Isolated, Lag::Crashed] {
            snapshot_to_lagging_follower(seed, lag)?;
        }
        Ok(())
    });
}

fn snapshot_to_lagging_follower(seed: u64, lag: Lag) -> ScenarioResult<()> {
    let chunk_bytes = 32;
    let mut cluster = Cluster::new(config(3, chunk_bytes), NetworkFaults::reliable(), seed);
    let deadline = election_timeouts(&cluster, 10);
    cluster.put_committed("k0", "v0", 3, deadline)?;
    let leader = cluster.wait_for_leader(deadline)?;
    let follower = node_after(leader, 1, 3);
    let follower_last = cluster.core(follower).expect("live").status().last_index;
    match lag {
        Lag::Isolated => cluster.isolate(follower),
        Lag::Crashed => cluster.crash(follower),
    }
    let mut last = None;
    for i in 1..=60 {
        last = Some(cluster.put_committed(&format!("k{i}"), &format!("v{i}"), 2, deadline)?);
    }
    let leader = cluster.wait_for_leader(deadline)?;
    let leader_first = cluster.core(leader).expect("live").status().first_index;
    ensure(leader_first > follower_last.next(), || {
        format!("leader log starts at {leader_first}, the follower's ends at {follower_last}")
    })?;
    let snapshot_bytes = cluster.nodes[&leader].state().machine.records_size_bytes();
    let chunks_before = cluster.messages_sent("snapshot_chunk");
    cluster.heal();
    cluster.restart(follower);
    cluster.wait_applied(last.expect("60 puts"), 3, deadline)?;
    let chunks = cluster.messages_sent("snapshot_chunk") - chunks_before;
    let chunks_min = snapshot_bytes.div_ceil(chunk_bytes).max(2);
    ensure(chunks >= chunks_min, || {
        format!(
            "{chunks} chunks sent for a {snapshot_bytes}-byte snapshot in {chunk_bytes}-byte chunks"
        )
    })?;
    let first = cluster.core(follower).expect("live").status().first_index;
    ensure(first > follower_last.next(), || {
        format!("{lag:?} follower's log still starts at {first}")
    })?;
    cluster.put_committed("after", "v", 3, deadline)?;
    cluster.wait_caught_up(deadline)?;
    cluster.expect_states_match_leader()?;
    (0..=60).try_for_each(|i| cluster.expect_value_everywhere(&format!("k{i}"), &format!("v{i}")))
}

// Goal: a snapshot transfer completes, with the leader's exact state,
// through chunks corrupted in flight (each refused by the follower's crc32
// check and sent again), streams broken mid-way, and a follower and then a
// leader crashing mid-transfer (the follower resumes after what its
// application wrote behind its restore mark; a new leader's transfer
// supersedes the old one).
// Method: 3 nodes, 16-byte chunks; a crashed follower misses 60 puts
// (compacted away), then comes back over a network that corrupts 20% of
// messages (chunks are delivered damaged, others dropped as the transport
// would) and breaks 10% of snapshot streams. After a few chunks the
// follower crashes and restarts; after a few more the leader crashes and
// restarts. Every put must reach all 3, damaged chunks must have been
// delivered and streams broken, every restore must end with the reference
// state at its index (state machine safety), and every member's state
// must be the leader's.
// Ports: Raft paper §7 (InstallSnapshot, here in chunks with a crc32);
// TigerBeetle's VOPR corruption faults.
#[test]
fn snapshot_transfer_survives_corruption_broken_streams_and_crashes() {
    run_seeds(&[1, 2, 3], |seed| {
        let mut cluster = Cluster::new(config(3, 16), NetworkFaults::reliable(), seed);
        let deadline = election_timeouts(&cluster, 50);
        cluster.put_committed("k0", "v0", 3, deadline)?;
        let leader = cluster.wait_for_leader(deadline)?;
        let follower = node_after(leader, 1, 3);
        cluster.crash(follower);
        let mut last = None;
        for i in 1..=60 {
            last = Some(cluster.put_committed(&format!("k{i}"), &format!("v{i}"), 2, deadline)?);
        }
        cluster.network.faults.corrupt = 0.2;
        cluster.network.faults.snapshot_break = 0.1;
        cluster.restart(follower);
        for victim in [follower, cluster.wait_for_leader(deadline)?] {
            let chunks = cluster.messages_sent("snapshot_chunk");
            cluster.wait_until("a few chunks are sent", deadline, |c| {
                c.messages_sent("snapshot_chunk") >= chunks + 4
            })?;
            cluster.crash(victim);
            cluster.run_ticks(election_timeouts(&cluster, 1))?;
            cluster.restart(victim);
        }
        cluster.wait_applied(last.expect("60 puts"), 3, deadline)?;
        let corrupted = cluster.network.corrupted;
        ensure(
            corrupted.chunks_delivered > 0 && corrupted.chunks_broken > 0,
            || format!("no corrupted chunk delivered or no stream broken: {corrupted:?}"),
        )?;
        cluster.network.faults = NetworkFaults::reliable();
        cluster.put_committed("after", "v", 3, deadline)?;
        cluster.wait_caught_up(deadline)?;
        cluster.expect_states_match_leader()?;
        (0..=60)
            .try_for_each(|i| cluster.expect_value_everywhere(&format!("k{i}"), &format!("v{i}")))
    });
}

// Goal: a follower that crashes at any step of a restore (chunks written
// but the snapshot not installed; installed but the restore not finished;
// finished but not acknowledged), by a process crash or a power failure,
// ends with the leader's exact state; when its restore mark survived, it
// resumes the same restore where the mark says instead of starting over.
// Method: 3 nodes, 16-byte chunks, one chunk in flight at a time; a
// follower is isolated while 60 puts commit; a crash is armed at the
// restore step (for the first step, once the follower's mark shows a
// restore under way past its first chunk); the follower rejoins, crashes
// there, and its state on disk is checked (restoring, and for a crash
// after the install its log compacted up to the snapshot); it restarts
// and catches up, and its whole state must be the leader's. A restart
// with a surviving mark must not begin a new restore. The finish is
// synced (the follower acknowledges the snapshot next), so no crash after
// it, power failure included, leaves a mark.
// Ports: Raft paper §7; the Ready contract of `core::ready` (steps 1-4);
// TigerBeetle's crash points in the storage path.
#[test]
fn follower_crashing_mid_restore_resumes_and_ends_with_the_leader_state() {
    run_seeds(&[1, 2, 3], |seed| {
        for point in [
            CrashPoint::RestoreWritten,
            CrashPoint::SnapshotInstalled,
            CrashPoint::Restored,
        ] {
            for kind in [CrashKind::Process, CrashKind::PowerFailure] {
                restore_interrupted(seed, point, kind)
                    .map_err(|error| format!("crash at {point:?} ({kind:?}): {error}"))?;
            }
        }
        Ok(())
    });
}

fn restore_interrupted(seed: u64, point: CrashPoint, kind: CrashKind) -> ScenarioResult<()> {
    let mut config = config(3, 16);
    config.snapshot_chunks_in_flight = 1;
    let mut cluster = Cluster::new(config, NetworkFaults::reliable(), seed);
    let deadline = election_timeouts(&cluster, 20);
    cluster.put_committed("k0", "v0", 3, deadline)?;
    let follower = node_after(cluster.wait_for_leader(deadline)?, 1, 3);
    cluster.isolate(follower);
    let mut last = None;
    for i in 1..=60 {
        last = Some(cluster.put_committed(&format!("k{i}"), &format!("v{i}"), 2, deadline)?);
    }
    cluster.heal();
    if point == CrashPoint::RestoreWritten {
        cluster.wait_until(
            "the follower restores past its first chunk",
            deadline,
            |c| {
                c.restore_point(follower)
                    .is_some_and(|mark| !mark.next_cursor.is_empty())
            },
        )?;
    }
    cluster.arm_crash(follower, point, kind);
    cluster.wait_until("the armed crash fires", deadline, |c| !c.is_live(follower))?;
    check_crashed_restore(&cluster, follower, point, kind)?;
    let mark = cluster.restore_point(follower);
    let begun = cluster.snapshot_stats.restores_begun;
    cluster.run_ticks(election_timeouts(&cluster, 1))?;
    cluster.restart(follower);
    cluster.wait_applied(last.expect("60 puts"), 3, deadline)?;
    let restarted = cluster.snapshot_stats.restores_begun - begun;
    ensure(mark.is_none() || restarted == 0, || {
        format!("the restore marked {mark:?} was begun again {restarted} times instead of resumed")
    })?;
    cluster.put_committed("after", "v", 3, deadline)?;
    cluster.wait_caught_up(deadline)?;
    cluster.expect_states_match_leader()?;
    (0..=60).try_for_each(|i| cluster.expect_value_everywhere(&format!("k{i}"), &format!("v{i}")))
}

/// Checks what a follower crashed at `point` of a restore left: a
/// restore mark wherever a synced write covers it (a crash after the
/// install, or any process crash before the restore finished), and for a
/// crash after the install a log compacted up to the marked snapshot.
fn check_crashed_restore(
    cluster: &Cluster,
    follower: NodeId,
    point: CrashPoint,
    kind: CrashKind,
) -> ScenarioResult<()> {
    let mark = cluster.restore_point(follower);
    let marked = match (point, kind) {
        (CrashPoint::Restored, _) => false,
        (CrashPoint::RestoreWritten, CrashKind::PowerFailure) => mark.is_some(),
        _ => true,
    };
    ensure(mark.is_some() == marked, || {
        format!("after a crash at {point:?} ({kind:?}) the follower's restore mark is {mark:?}")
    })?;
    if point == CrashPoint::RestoreWritten {
        return Ok(());
    }
    let compacted = cluster.compacted_prefix(follower);
    let restored = cluster.nodes[&follower].state().applied;
    let snapshot = mark.as_ref().map_or(restored, |mark| mark.index);
    ensure(compacted == Some(snapshot), || {
        format!(
            "the follower's log is compacted up to {compacted:?}, its snapshot is at {snapshot}"
        )
    })
}

/// The faults one run of [`snapshot_rounds`] injects.
#[derive(Clone, Copy, Debug, Default)]
struct Faults {
    /// Cut the victim off each round.
    disconnect: bool,
    /// Crash the victim each round.
    crash: bool,
    /// Loss, duplication and delay on the network.
    unreliable: bool,
    /// Probability of a crash at each crash point of a Ready.
    crash_in_ready: f64,
}

/// The lab's `snapcommon`: 30 rounds; each fails a victim (a follower, or
/// every third round the leader), proposes half to one and a half snapshot
/// intervals of puts at the leader-to-be, brings the victim back, and
/// checks log lengths. Puts are retried until acknowledged; nodes crashed
/// inside a Ready (not the victim) restart before the next tick.
fn snapshot_rounds(seed: u64, faults: Faults) -> ScenarioResult<()> {
    let network = if faults.unreliable {
        unreliable()
    } else {
        NetworkFaults::reliable()
    };
    let mut config = config(3, 64);
    config.crash_in_ready = faults.crash_in_ready;
    let mut cluster = Cluster::new(config, network, seed);
    let mut acknowledged = Vec::new();
    one(&mut cluster, &mut acknowledged, 3, None)?;
    for round in 0..30 {
        let leader = wait_leader(&mut cluster)?;
        let (sender, victim) = match round % 3 {
            1 => (node_after(leader, 1, 3), leader),
            _ => (leader, node_after(leader, 1, 3)),
        };
        if faults.disconnect {
            cluster.isolate(victim);
        }
        if faults.crash {
            cluster.crash(victim);
        }
        let held_down = faults.crash.then_some(victim);
        if faults.disconnect || faults.crash {
            one(&mut cluster, &mut acknowledged, 2, held_down)?;
        }
        let puts = SNAPSHOT_INTERVAL / 2 + cluster.rng().random_range(0..SNAPSHOT_INTERVAL);
        for i in 0..puts {
            let _ = cluster.propose_put(sender, &format!("s{round}-{i}"), "v");
        }
        let healthy = if faults.disconnect || faults.crash {
            2
        } else {
            3
        };
        one(&mut cluster, &mut acknowledged, healthy, held_down)?;
        check_log_lengths(&cluster, 3 * SNAPSHOT_INTERVAL)?;
        cluster.heal();
        cluster.restart(victim);
        one(&mut cluster, &mut acknowledged, 3, None)?;
    }
    finish(&mut cluster, &acknowledged, faults)
}

/// Returns the network of the unreliable scenarios: 10% loss, 20%
/// duplication, delays of up to 3 ticks.
fn unreliable() -> NetworkFaults {
    NetworkFaults {
        loss: 0.1,
        duplicate: 0.2,
        delay_ticks_max: 3,
        ..NetworkFaults::reliable()
    }
}

/// Waits for a leader, restarting nodes crashed inside a Ready.
fn wait_leader(cluster: &mut Cluster) -> ScenarioResult<NodeId> {
    for _ in 0..election_timeouts(cluster, 20) {
        cluster.restart_all();
        if let Some(leader) = cluster.leader() {
            return Ok(leader);
        }
        cluster.run_ticks(1)?;
    }
    Err(format!("no leader by tick {}", cluster.now))
}

/// Puts a fresh key until `count` nodes applied it (the lab's `one`),
/// restarting every crashed node but `held_down` before each tick.
fn one(
    cluster: &mut Cluster,
    acknowledged: &mut Vec<(String, String)>,
    count: usize,
    held_down: Option<NodeId>,
) -> ScenarioResult<ProposalId> {
    let (key, value) = (
        format!("k{}", acknowledged.len()),
        format!("v{}", acknowledged.len()),
    );
    let deadline = election_timeouts(cluster, 50);
    let proposal = cluster.put_acknowledged_with(&key, &value, count, deadline, |c| {
        for id in c.all_ids() {
            if Some(id) != held_down {
                c.restart(id);
            }
        }
    })?;
    acknowledged.push((key, value));
    Ok(proposal)
}

/// Stops the crashes, heals, checks that snapshots were sent if a victim
/// was failed, that every node compacted its log, that every member holds
/// the leader's state and every acknowledged put.
fn finish(
    cluster: &mut Cluster,
    acknowledged: &[(String, String)],
    faults: Faults,
) -> ScenarioResult<()> {
    cluster.config.crash_in_ready = 0.0;
    cluster.heal();
    cluster.restart_all();
    let deadline = election_timeouts(cluster, 50);
    cluster.put_acknowledged("end", "end", 3, deadline)?;
    cluster.wait_caught_up(deadline)?;
    let chunks = cluster.messages_sent("snapshot_chunk");
    let victims = faults.disconnect || faults.crash;
    ensure(!victims || chunks > 0, || {
        format!("no snapshot chunk sent ({faults:?})")
    })?;
    for id in cluster.live_ids() {
        let first = cluster.core(id).expect("live").status().first_index;
        ensure(first.0 > 1, || format!("node {id} never compacted its log"))?;
    }
    cluster.expect_states_match_leader()?;
    acknowledged
        .iter()
        .try_for_each(|(key, value)| cluster.expect_value_everywhere(key, value))
}

// Goal: followers cut off for a while catch up through snapshots, round
// after round, with the leader itself cut off every third round.
// Method: the lab's snapcommon with disconnects on a reliable network.
// Ports: 6.824 lab 2D TestSnapshotInstall; Raft paper §7.
#[test]
fn snapshots_install_after_repeated_disconnects() {
    let faults = Faults {
        disconnect: true,
        ..Faults::default()
    };
    run_seeds(&[1, 2, 3], |seed| snapshot_rounds(seed, faults));
}

// Goal: snapshot installation works when chunks and their answers are
// lost, duplicated and reordered.
// Method: the lab's snapcommon with disconnects on an unreliable network.
// Ports: 6.824 lab 2D TestSnapshotInstallUnreliable; Raft paper §7.
#[test]
fn snapshots_install_on_an_unreliable_network() {
    let faults = Faults {
        disconnect: true,
        unreliable: true,
        ..Faults::default()
    };
    run_seeds(&[1, 2, 3], |seed| snapshot_rounds(seed, faults));
}

// Goal: nodes restarted from a snapshot and a log suffix recover their
// state, and crashed followers catch up through snapshots.
// Method: the lab's snapcommon with crashes, on a reliable and on an
// unreliable network.
// Ports: 6.824 lab 2D TestSnapshotInstallCrash and
// TestSnapshotInstallUnCrash; Raft paper §7.
#[test]
fn snapshots_install_after_repeated_crashes() {
    run_seeds(&[1, 2, 3], |seed| {
        for unreliable in [false, true] {
            snapshot_rounds(
                seed,
                Faults {
                    crash: true,
                    unreliable,
                    ..Faults::default()
                },
            )?;
        }
        Ok(())
    });
}

// Goal: snapshots stay consistent when nodes crash at random points of
// the Ready loop (while persisting or before sending), on top of the
// victim crashes.
// Method: the lab's snapcommon with crashes and `crash_in_ready` > 0;
// nodes crashed inside a Ready restart before the next tick.
// Ports: 6.824 lab 2D TestSnapshotInstallCrash; Raft paper §7; etcd's
// Ready contract.
#[test]
fn snapshots_survive_crashes_inside_the_ready_loop() {
    let faults = Faults {
        crash: true,
        crash_in_ready: 0.003,
        ..Faults::default()
    };
    run_seeds(&[1, 2, 3], |seed| snapshot_rounds(seed, faults));
}

// Goal: after every node crashes, each resumes from its own application
// state (which survives a crash, and a power failure back to its last
// synced write) plus its log suffix, and the cluster goes on at higher
// indexes.
// Method: 3 nodes; 5 rounds of: half to one and a half intervals of
// puts, a put on all, crash and restart every node, a put on all at a
// higher index than before. Every value is on every node at the end.
// Ports: 6.824 lab 2D TestSnapshotAllCrash and TestSnapshotInit; Raft
// paper §7.
#[test]
fn all_nodes_restore_from_their_snapshots_after_crashing() {
    run_seeds(&[1, 2, 3], |seed| {
        let mut cluster = Cluster::new(config(3, 64), NetworkFaults::reliable(), seed);
        let mut acknowledged = Vec::new();
        one(&mut cluster, &mut acknowledged, 3, None)?;
        for _ in 0..5 {
            let puts = SNAPSHOT_INTERVAL / 2 + cluster.rng().random_range(0..SNAPSHOT_INTERVAL);
            for _ in 0..puts {
                one(&mut cluster, &mut acknowledged, 1, None)?;
            }
            let before = one(&mut cluster, &mut acknowledged, 3, None)?;
            let ids: BTreeSet<NodeId> = cluster.all_ids();
            ids.iter().for_each(|&id| cluster.crash(id));
            cluster.restart_all();
            let after = one(&mut cluster, &mut acknowledged, 3, None)?;
            ensure(after.index > before.index, || {
                format!(
                    "index went from {} to {} across a full restart",
                    before.index, after.index
                )
            })?;
        }
        finish(&mut cluster, &acknowledged, Faults::default())
    });
}
