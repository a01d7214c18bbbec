//! Snapshot and log compaction scenarios on the deterministic simulator,
//! ported from MIT 6.824 lab 2D (Raft paper §7): compaction, chunked
//! InstallSnapshot to lagging followers, and snapshots under disconnects,
//! crashes (also inside the Ready loop) and an unreliable network. Every
//! run uses fixed seeds; a failure names its seed (`SEED=<seed> ...`).

mod common;

use std::collections::BTreeSet;

use common::{election_timeouts, ensure, node_after, run_seeds};
use raft::core::{NodeId, ProposalId};
use raft::sim::cluster::{Cluster, ClusterConfig};
use raft::sim::network::NetworkFaults;
use raft::sim::scenario::ScenarioResult;
use rand::Rng;

/// Entries between snapshots in these scenarios (the lab's
/// `SnapShotInterval`).
const SNAPSHOT_INTERVAL: u64 = 10;

/// Returns a config of `voters` nodes taking a snapshot every
/// [`SNAPSHOT_INTERVAL`] entries, sent in chunks of `chunk_bytes`.
fn config(voters: u64, chunk_bytes: u64) -> ClusterConfig {
    let mut config = ClusterConfig::new(voters);
    config.snapshot_interval = SNAPSHOT_INTERVAL;
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
// by an InstallSnapshot streamed in many small chunks, then by appends.
// Method: 3 nodes, a snapshot every 10 entries, 32-byte chunks; a put on
// all; a follower is isolated (or crashed); 60 puts commit on the other
// two, so the leader's log starts past the follower's last entry; the
// follower rejoins (or restarts) and applies the last put. It received at
// least as many chunks as the leader's snapshot has 32-byte pieces (and
// more than one), its log now starts past its old end, and every value is
// on every node.
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
    let snapshot_bytes = cluster
        .core(leader)
        .expect("live")
        .storage()
        .snapshot_data()
        .len() as u64;
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
    (0..=60).try_for_each(|i| cluster.expect_value_everywhere(&format!("k{i}"), &format!("v{i}")))
}

// Goal: a snapshot transfer completes, with the leader's exact state,
// through chunks corrupted in flight (each refused by the follower's crc32
// check and sent again), streams broken mid-way, and a follower and then a
// leader crashing mid-transfer (the follower resumes after what it staged
// durably; a new leader's transfer supersedes the old one).
// Method: 3 nodes, 16-byte chunks; a crashed follower misses 60 puts
// (compacted away), then comes back over a network that corrupts 20% of
// messages (chunks are delivered damaged, others dropped as the transport
// would) and breaks 10% of snapshot streams. After a few chunks the
// follower crashes and restarts; after a few more the leader crashes and
// restarts. Every put must reach all 3, damaged chunks must have been
// delivered and streams broken, and every snapshot restored must hash
// like the one its index was taken with (state machine safety).
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
        (0..=60)
            .try_for_each(|i| cluster.expect_value_everywhere(&format!("k{i}"), &format!("v{i}")))
    });
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
/// was failed, that every node compacted its log, and that every
/// acknowledged put is on every node.
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

// Goal: after every node crashes, each restores its state from its own
// snapshot plus log suffix, and the cluster goes on at higher indexes.
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
