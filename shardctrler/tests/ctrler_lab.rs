//! The scenarios of the classic shard controller lab (MIT 6.824 lab 4A,
//! `shardctrler/test_test.go`) against a three-replica controller of real
//! `shardctrler` processes over gRPC, with RocksDB in temp dirs. Each
//! scenario kills a minority replica (a follower) with SIGKILL part way and
//! restarts it later; with a snapshot every 20 entries, a restarted replica
//! may catch up from a snapshot. The lab's 10 shards are used (`--shards`).

mod harness;

use std::collections::BTreeSet;

use client::ClientError;
use harness::{Cluster, check_balanced, groups, servers, shard_counts};
use proto::kv::v1 as pb;

const SHARDS: u32 = 10;

/// Asserts `result` is a refusal (`INVALID_ARGUMENT`).
fn assert_refused(result: Result<pb::Config, ClientError>, what: &str) {
    match result {
        Err(ClientError::InvalidArgument { message }) => assert!(!message.is_empty(), "{what}"),
        other => panic!("{what}: expected a refusal, got {other:?}"),
    }
}

// Goal: Join, Leave and Query have the lab's semantics (lab "Basic leave/
// join", "Historical queries"). Method: join 1, 2, 3, leave 1, 2 with a
// follower killed for the middle part; check balance, server lists,
// Query(-1) and past the latest, every historical number, and that the
// restarted follower holds the same history.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_join_leave_and_historical_queries() {
    let mut cluster = Cluster::start(SHARDS).await;
    let mut ck = cluster.client();
    let c0 = ck.query(-1).await.expect("query");
    assert_eq!(c0.num, 0);
    assert_eq!(c0.shards, vec![0; SHARDS as usize]);
    assert!(c0.groups.is_empty());
    let c1 = ck.join(groups(&[1])).await.expect("join 1");
    check_balanced(&c1, &[1]);
    let c2 = ck.join(groups(&[2])).await.expect("join 2");
    check_balanced(&c2, &[1, 2]);
    let follower = cluster.follower().await;
    cluster.kill(follower);
    let c3 = ck.join(groups(&[3])).await.expect("join 3");
    check_balanced(&c3, &[1, 2, 3]);
    let c4 = ck.leave(vec![1]).await.expect("leave 1");
    check_balanced(&c4, &[2, 3]);
    cluster.restart(follower);
    let c5 = ck.leave(vec![2]).await.expect("leave 2");
    check_balanced(&c5, &[3]);
    assert_eq!(c5.groups[&3].servers, servers(3));
    let history = vec![c0, c1, c2, c3, c4, c5];
    for (num, config) in history.iter().enumerate() {
        assert_eq!(config.num, num as u64);
        assert_eq!(&ck.query(num as i64).await.expect("query"), config);
    }
    assert_eq!(ck.query(-1).await.expect("latest"), history[5]);
    assert_eq!(ck.query(1000).await.expect("past latest"), history[5]);
    assert_eq!(cluster.history_at(follower, 5).await, history);
}

// Goal: Move gives exactly one shard to one group and pins nothing (lab
// "Move"). Method: join two groups in one call, move every shard, checking
// each configuration changes only the moved shard; refused moves change
// nothing; a later Join rebalances. A follower is down for the moves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn move_changes_one_shard_and_join_rebalances_after() {
    let mut cluster = Cluster::start(SHARDS).await;
    let mut ck = cluster.client();
    let mut previous = ck.join(groups(&[1, 2])).await.expect("join 1, 2");
    let follower = cluster.follower().await;
    cluster.kill(follower);
    for shard in 0..SHARDS {
        let gid = if shard < SHARDS / 2 { 1 } else { 2 };
        let config = ck.move_shard(shard, gid).await.expect("move");
        assert_eq!(config.num, previous.num + 1);
        let mut expected = previous.shards.clone();
        expected[shard as usize] = gid;
        assert_eq!(config.shards, expected, "move {shard} -> {gid}");
        assert_eq!(config.groups, previous.groups);
        previous = config;
    }
    cluster.restart(follower);
    assert_refused(ck.move_shard(SHARDS, 1).await, "shard out of range");
    assert_refused(ck.move_shard(0, 3).await, "unknown gid");
    assert_refused(ck.move_shard(0, 0).await, "gid 0");
    assert_eq!(ck.query(-1).await.expect("latest"), previous);
    let joined = ck.join(groups(&[3])).await.expect("join 3");
    check_balanced(&joined, &[1, 2, 3]);
    let latest = joined.num;
    let history = cluster.history_at(follower, latest).await;
    assert_eq!(history.last(), Some(&joined));
}

// Goal: many clients joining and leaving at once all get through, and the
// result is balanced (lab "Concurrent leave/join"). Method: 10 clients,
// each joins two groups and leaves one of them; a follower is killed before
// and restarted when half the clients are done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_join_and_leave_from_many_clients() {
    let mut cluster = Cluster::start(SHARDS).await;
    let follower = cluster.follower().await;
    cluster.kill(follower);
    let mut tasks = Vec::new();
    for client in 0..10u64 {
        let mut ck = cluster.client();
        tasks.push(tokio::spawn(async move {
            ck.join(groups(&[100 + client])).await.expect("join stays");
            ck.join(groups(&[200 + client])).await.expect("join goes");
            ck.leave(vec![200 + client]).await.expect("leave");
        }));
    }
    for (index, task) in tasks.into_iter().enumerate() {
        task.await.expect("client task");
        if index == 4 {
            cluster.restart(follower);
        }
    }
    let mut ck = cluster.client();
    let latest = ck.query(-1).await.expect("latest");
    let gids: Vec<u64> = (100..110).collect();
    check_balanced(&latest, &gids);
    // Every successful call created exactly one configuration.
    assert_eq!(latest.num, 30);
    let history = cluster.history_at(follower, latest.num).await;
    assert_eq!(history.last(), Some(&latest));
}

// Goal: Join and Leave move the fewest shards (lab "Minimal transfers after
// joins / leaves"). Method: with 4 groups, join a fifth: only shards that
// go to it move, and it gets its fair share; then leave it and another:
// only their shards move. A follower is down in the middle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_and_leave_move_the_fewest_shards() {
    let mut cluster = Cluster::start(SHARDS).await;
    let mut ck = cluster.client();
    let before = ck.join(groups(&[1, 2, 3, 4])).await.expect("join 4 groups");
    let joined = ck.join(groups(&[5])).await.expect("join 5");
    check_balanced(&joined, &[1, 2, 3, 4, 5]);
    for (shard, (old, new)) in before.shards.iter().zip(&joined.shards).enumerate() {
        assert!(
            old == new || *new == 5,
            "shard {shard} moved {old} -> {new}"
        );
    }
    assert_eq!(shard_counts(&joined)[&5], (SHARDS / 5) as usize);
    let follower = cluster.follower().await;
    cluster.kill(follower);
    let left = ck.leave(vec![5, 2]).await.expect("leave 5, 2");
    check_balanced(&left, &[1, 3, 4]);
    for (shard, (old, new)) in joined.shards.iter().zip(&left.shards).enumerate() {
        assert!(
            old == new || *old == 5 || *old == 2,
            "shard {shard} moved {old} -> {new} though its group stayed"
        );
    }
    cluster.restart(follower);
    let history = cluster.history_at(follower, left.num).await;
    assert_eq!(history.last(), Some(&left));
}

// Goal: with more groups than shards, every shard is owned, no group holds
// two, and the groups without shards take over when owners leave (lab
// "Check Join/Leave with more groups than shards"). Method: join 20 groups
// to 10 shards one by one, leave the owners, check; a follower is down for
// the leaves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_groups_than_shards() {
    let mut cluster = Cluster::start(SHARDS).await;
    let mut ck = cluster.client();
    let mut latest = ck.query(-1).await.expect("query");
    for gid in 1..=20 {
        latest = ck.join(groups(&[gid])).await.expect("join");
    }
    let all: Vec<u64> = (1..=20).collect();
    check_balanced(&latest, &all);
    let owners: BTreeSet<u64> = latest.shards.iter().copied().collect();
    assert_eq!(owners.len(), SHARDS as usize, "each shard on its own group");
    let follower = cluster.follower().await;
    cluster.kill(follower);
    let leaving: Vec<u64> = owners.iter().copied().collect();
    let after = ck.leave(leaving.clone()).await.expect("leave the owners");
    let staying: Vec<u64> = all
        .iter()
        .copied()
        .filter(|g| !owners.contains(g))
        .collect();
    check_balanced(&after, &staying);
    let new_owners: BTreeSet<u64> = after.shards.iter().copied().collect();
    assert_eq!(new_owners.len(), SHARDS as usize);
    cluster.restart(follower);
    let last = ck
        .leave(staying[1..].to_vec())
        .await
        .expect("leave all but one");
    assert_eq!(last.shards, vec![staying[0]; SHARDS as usize]);
    let history = cluster.history_at(follower, last.num).await;
    assert_eq!(history.last(), Some(&last));
}

// Goal: one call may join or leave several groups, all or nothing (lab
// "Multi-group join/leave"). Method: join three groups at once, two more,
// leave two at once, leave the rest; a refused multi-group call changes
// nothing. A follower is down for the second half.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_group_join_and_leave_in_one_call() {
    let mut cluster = Cluster::start(SHARDS).await;
    let mut ck = cluster.client();
    let c1 = ck.join(groups(&[1, 2, 3])).await.expect("join 1, 2, 3");
    assert_eq!(c1.num, 1);
    check_balanced(&c1, &[1, 2, 3]);
    let c2 = ck.join(groups(&[4, 5])).await.expect("join 4, 5");
    check_balanced(&c2, &[1, 2, 3, 4, 5]);
    let follower = cluster.follower().await;
    cluster.kill(follower);
    assert_refused(ck.join(groups(&[6, 1])).await, "join with a present gid");
    assert_refused(ck.leave(vec![2, 9]).await, "leave with an unknown gid");
    assert_eq!(ck.query(-1).await.expect("unchanged"), c2);
    let c3 = ck.leave(vec![1, 3]).await.expect("leave 1, 3");
    assert_eq!(c3.num, 3);
    check_balanced(&c3, &[2, 4, 5]);
    cluster.restart(follower);
    let c4 = ck.leave(vec![2, 4, 5]).await.expect("leave the rest");
    check_balanced(&c4, &[]);
    assert_eq!(c4.shards, vec![0; SHARDS as usize]);
    let history = cluster.history_at(follower, c4.num).await;
    assert_eq!(history.last(), Some(&c4));
}
