//! The lab's scenarios under faults of the replicas and of the network
//! (MIT 6.824 lab 4B "unreliable" and "concurrent 2"): Raft messages
//! inside each group lost, delayed or partitioned, and replicas crashing,
//! while groups join and leave under concurrent clients. Every test checks
//! the clients' history for linearizability and counts each appended
//! token in the final values: acknowledged appends exactly once, failed
//! ones at most once, across leader changes and migrations
//! (`kv_tests::history`).
//!
//! Faults act on each group's Raft traffic (`kv_tests::harness`); client
//! calls and shard moves between groups see their effects: leaders lost,
//! replicas behind, groups without a quorum for a while.

use std::time::Duration;

use kv_tests::harness::{Cluster, ClusterOptions, DEADLINE};
use kv_tests::history::{Load, Workload};
use proto::config::GroupId;

/// The groups of every scenario.
const GIDS: [u64; 3] = [1, 2, 3];

/// How long a fault is held before the next step.
const HOLD: Duration = Duration::from_millis(400);

/// The reconfigurations every scenario runs after group 1 joined: joins
/// (`true`) and leaves of a gid. No group gets back shards it handed
/// over: see `a_group_regaining_its_shards_at_once_settles` for why.
const STEPS: [(bool, u64); 4] = [(true, 2), (true, 3), (false, 1), (false, 2)];

/// Reconfigurations in which groups take back at once the shards they
/// just handed over.
const FLAPS: [(bool, u64); 6] = [
    (true, 2),
    (true, 3),
    (false, 1),
    (true, 1),
    (false, 2),
    (true, 2),
];

/// Returns the first group from `GIDS[round % 3]` on that owns shards in
/// the latest configuration: the clients talk to it, so once it restarts
/// they drop their connections to its stopped replicas (see
/// `Cluster::restart`).
async fn owning_group(cluster: &mut Cluster, round: usize) -> u64 {
    let config = cluster.latest_config().await;
    (0..GIDS.len())
        .map(|offset| GIDS[(round + offset) % GIDS.len()])
        .find(|&gid| !config.shards_of(GroupId(gid)).is_empty())
        .expect("some group owns shards")
}

/// Runs the reconfiguration `step`.
async fn reconfigure(cluster: &mut Cluster, (join, gid): (bool, u64)) {
    if join {
        cluster.join(gid).await;
    } else {
        cluster.leave(gid).await;
    }
}

/// Heals every fault, waits for every group to settle in the latest
/// configuration and for a little more load, then checks the history.
async fn settle_and_check(cluster: &mut Cluster, load: Load) {
    cluster.heal_all();
    let num = cluster.latest_config().await.num;
    cluster.wait_settled(num).await;
    load.wait_more(10).await;
    let checked = load.finish_and_check(40).await;
    assert!(checked.appends_acknowledged > 20, "{checked:?}");
}

// Goal: concurrent clients stay linearizable, each append applied once,
// while the leader of a group crashes right after each reconfiguration
// (during its moves), the other two carry on without it, and the group
// restarts a moment later, every replica on its data dir (lab
// "concurrent 2"). The crashed replica restarts with its group: see
// `Cluster::restart` on restarting one replica alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_clients_with_replica_crashes_during_moves() {
    let mut cluster = Cluster::start_with(ClusterOptions::lab(1), &GIDS).await;
    cluster.join(1).await;
    let load = Load::start(cluster.client(DEADLINE).await, 3, Workload::lab());
    for (round, step) in STEPS.into_iter().enumerate() {
        load.wait_more(5).await;
        reconfigure(&mut cluster, step).await;
        let gid = owning_group(&mut cluster, round).await;
        let leader = cluster.wait_leader(gid).await;
        cluster.crash(gid, leader);
        tokio::time::sleep(HOLD).await;
        cluster.stop_group(gid);
        cluster.start_group(gid).await;
    }
    settle_and_check(&mut cluster, load).await;
    cluster.stop();
}

// Goal: concurrent clients stay linearizable, each append applied once,
// while every group loses 10% of its Raft messages and delays the rest
// by up to a few ms through joins and leaves (lab "unreliable 1").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreliable_network_loss() {
    let mut cluster = Cluster::start_with(ClusterOptions::lab(2), &GIDS).await;
    for gid in GIDS {
        cluster.set_unreliable(gid, 0.1, Duration::from_millis(3));
    }
    cluster.join(1).await;
    let load = Load::start(cluster.client(DEADLINE).await, 3, Workload::lab());
    for step in STEPS {
        load.wait_more(5).await;
        reconfigure(&mut cluster, step).await;
    }
    let dropped: u64 = GIDS.iter().map(|&gid| cluster.dropped(gid)).sum();
    assert!(dropped > 0, "the faults dropped messages");
    settle_and_check(&mut cluster, load).await;
    cluster.stop();
}

// Goal: concurrent clients stay linearizable, each append applied once,
// while each group's leader is cut from its followers for a while after
// every reconfiguration (a new leader is elected by the majority; the old
// one must not answer) and the partition heals (lab "unreliable 2").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreliable_network_partitions() {
    let mut cluster = Cluster::start_with(ClusterOptions::lab(3), &GIDS).await;
    cluster.join(1).await;
    let load = Load::start(cluster.client(DEADLINE).await, 3, Workload::lab());
    for (round, step) in STEPS.into_iter().enumerate() {
        load.wait_more(5).await;
        reconfigure(&mut cluster, step).await;
        let gid = GIDS[round % GIDS.len()];
        let leader = cluster.wait_leader(gid).await;
        cluster.partition(gid, &[leader]);
        tokio::time::sleep(HOLD).await;
        cluster.heal(gid);
    }
    settle_and_check(&mut cluster, load).await;
    cluster.stop();
}

// Goal: concurrent clients stay linearizable, each append applied once,
// when everything goes wrong during moves at once (lab "unreliable 3"):
// 10% loss and delays in every group, a leader cut off, and a follower
// crashing, its group restarting whole after each reconfiguration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreliable_network_during_migration() {
    let mut cluster = Cluster::start_with(ClusterOptions::lab(4), &GIDS).await;
    cluster.join(1).await;
    let load = Load::start(cluster.client(DEADLINE).await, 3, Workload::lab());
    for (round, step) in STEPS.into_iter().enumerate() {
        for gid in GIDS {
            cluster.set_unreliable(gid, 0.1, Duration::from_millis(3));
        }
        load.wait_more(5).await;
        reconfigure(&mut cluster, step).await;
        let (cut, crashed) = (GIDS[round % 3], owning_group(&mut cluster, round + 1).await);
        let leader = cluster.wait_leader(cut).await;
        cluster.partition(cut, &[leader]);
        let follower = (cluster.wait_leader(crashed).await + 1) % 3;
        cluster.crash(crashed, follower);
        tokio::time::sleep(HOLD).await;
        cluster.heal_all();
        cluster.stop_group(crashed);
        cluster.start_group(crashed).await;
    }
    settle_and_check(&mut cluster, load).await;
    cluster.stop();
}

// Goal: a group that takes back at once the shards it just handed over
// still lets every group settle, while leaders are cut off (replies of
// `DeleteShard` lost). Regression: the new owner (group 3, configuration
// N) retried `DeleteShard(shard, N)` after the old owner (group 2)
// applied the hand-over and moved on to N + 1, where it owns the shard
// again (`Pulling` from group 3); the old owner answered that the shard
// was not gone (it is held again), so group 3 stayed `Cleaning` in N and
// group 2 `Pulling` in N + 1 forever (one run in three on a loaded
// machine; none in 16 on a quiet one). A holder past N has handed over
// its copy of N (it could not leave N while `Sending`), which
// `ShardTable::handed_over_since` now answers; its unit test in
// `shardkv/src/shards_test.rs` catches the old rule every time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_regaining_its_shards_at_once_settles() {
    let mut cluster = Cluster::start_with(ClusterOptions::lab(3), &GIDS).await;
    cluster.join(1).await;
    let load = Load::start(cluster.client(DEADLINE).await, 3, Workload::lab());
    for (round, step) in FLAPS.into_iter().enumerate() {
        load.wait_more(5).await;
        reconfigure(&mut cluster, step).await;
        let gid = GIDS[round % GIDS.len()];
        let leader = cluster.wait_leader(gid).await;
        cluster.partition(gid, &[leader]);
        tokio::time::sleep(HOLD).await;
        cluster.heal(gid);
    }
    settle_and_check(&mut cluster, load).await;
    cluster.stop();
}
