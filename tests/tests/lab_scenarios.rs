//! The classic sharded key/value lab scenarios (MIT 6.824 lab 4B and its
//! challenges) on real replicas: a controller and groups of three group
//! replicas in process, over real gRPC and RocksDB (`kv_tests::harness`).
//! Groups go down whole or lose replicas while shards move; every test
//! with concurrent clients checks their history for linearizability and
//! counts each appended token in the final values: acknowledged appends
//! exactly once, failed ones at most once (`kv_tests::history`).
//!
//! The faults of the network (loss, delay, partitions) are in
//! `lab_faults.rs`.

use std::sync::Arc;
use std::time::Duration;

use client::ClientError;
use kv_tests::harness::{Cluster, ClusterOptions, DEADLINE, LAB_SHARDS, eventually, key_in_shard};
use kv_tests::history::{Load, Workload};
use proto::config::{GroupId, ShardId};
use shardkv::shards::ShardState;

/// Shards of the lab's configurations.
const SHARDS: u32 = LAB_SHARDS;

/// How long a call may take where the test expects it to fail.
const SHORT: Duration = Duration::from_secs(1);

/// Returns one key per shard, by shard.
fn shard_keys() -> Vec<(ShardId, String)> {
    (0..SHARDS)
        .map(|shard| (ShardId(shard), key_in_shard(shard, SHARDS)))
        .collect()
}

/// Puts `value(shard)` at every key of `keys`.
async fn put_all(client: &client::Client, keys: &[(ShardId, String)], value: &str) {
    for (shard, key) in keys {
        let value = format!("{value}-{}", shard.0);
        client
            .put(key.as_bytes(), value.as_bytes())
            .await
            .expect("put");
    }
}

/// Asserts that every key of `keys` reads `value(shard)` followed by
/// `suffix(shard)`.
async fn assert_values(
    client: &client::Client,
    keys: &[(ShardId, String)],
    value: &str,
    suffix: impl Fn(ShardId) -> &'static str,
) {
    for (shard, key) in keys {
        let expected = format!("{value}-{}{}", shard.0, suffix(*shard));
        let read = client.get(key.as_bytes()).await.expect("get");
        assert_eq!(read.as_deref(), Some(expected.as_bytes()), "{key}");
    }
}

/// Returns, for every key of `keys` at once, whether a read through
/// `client` (short deadline) answered its value, and the value.
async fn try_reads(
    client: &Arc<client::Client>,
    keys: &[(ShardId, String)],
) -> Vec<(ShardId, Result<Option<Vec<u8>>, ClientError>)> {
    let mut reads = tokio::task::JoinSet::new();
    for (shard, key) in keys.iter().cloned() {
        let client = client.clone();
        reads.spawn(async move {
            let read = client.get(key.as_bytes()).await;
            (shard, read.map(|value| value.map(|value| value.to_vec())))
        });
    }
    let mut answers = reads.join_all().await;
    answers.sort_by_key(|(shard, _)| *shard);
    answers
}

// Goal: with the shards split over two groups, a group down stops only
// its own shards (lab "static shards"): keys of the other group's shards
// keep answering reads and writes, the down group's time out, and all
// answer again with their values once it restarts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_shards_a_group_down_stops_only_its_shards() {
    let mut cluster = Cluster::start_with(ClusterOptions::lab(1), &[1, 2]).await;
    let num = cluster.join_many(&[1, 2]).await;
    cluster.wait_settled(num).await;
    let config = cluster.latest_config().await;
    let client = cluster.client(DEADLINE).await;
    let keys = shard_keys();
    put_all(&client, &keys, "v").await;
    cluster.stop_group(2);
    let short = Arc::new(cluster.client(SHORT).await);
    for (shard, read) in try_reads(&short, &keys).await {
        let expected = format!("v-{}", shard.0);
        if config.owner(shard) == Some(GroupId(1)) {
            let read = read.expect("group 1 serves its shards");
            assert_eq!(read.as_deref(), Some(expected.as_bytes()));
            let key = &keys[shard.0 as usize].1;
            short.append(key.as_bytes(), b"+").await.expect("append");
        } else {
            let refused = read.expect_err("group 2 is down");
            assert!(matches!(refused, ClientError::DeadlineExceeded { .. }));
        }
    }
    cluster.start_group(2).await;
    let from_one = |shard| {
        if config.owner(shard) == Some(GroupId(1)) {
            "+"
        } else {
            ""
        }
    };
    assert_values(&client, &keys, "v", from_one).await;
    cluster.stop();
}

// Goal: concurrent clients stay linearizable and every append applies
// exactly once while three groups join one after the other and two leave
// (lab "join then leave"), and the groups that left end holding nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_then_leave_under_load() {
    let mut cluster = Cluster::start_with(ClusterOptions::lab(1), &[1, 2, 3]).await;
    cluster.join(1).await;
    let load = Load::start(cluster.client(DEADLINE).await, 3, Workload::lab());
    for gid in [2, 3] {
        load.wait_more(10).await;
        cluster.join(gid).await;
    }
    for gid in [1, 2] {
        load.wait_more(10).await;
        cluster.leave(gid).await;
    }
    let num = cluster.latest_config().await.num;
    cluster.wait_settled(num).await;
    load.wait_more(10).await;
    let checked = load.finish_and_check(60).await;
    assert!(checked.appends_acknowledged > 30, "{checked:?}");
    for gid in [1, 2] {
        cluster.wait_empty(gid).await;
    }
    cluster.stop();
}

// Goal: with a log compacted every 20 entries, a replica cut off while its
// group moves shards under load comes back by snapshot, and after every
// replica restarts (state from snapshots and short logs) the history is
// linearizable with every append applied once (lab "snapshots").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_with_a_small_log_threshold() {
    let options = ClusterOptions {
        compaction: Some((20, 5)),
        ..ClusterOptions::lab(1)
    };
    let mut cluster = Cluster::start_with(options, &[1, 2, 3]).await;
    cluster.join(1).await;
    let load = Load::start(cluster.client(DEADLINE).await, 3, Workload::lab());
    load.wait_more(10).await;
    let behind = (cluster.wait_leader(1).await + 1) % 3;
    let last_index = cluster
        .replica(1, behind)
        .expect("runs")
        .handle()
        .status()
        .last_index;
    cluster.pause(1, behind);
    cluster.join(2).await;
    cluster.join(3).await;
    cluster.leave(1).await;
    cluster.join(1).await;
    eventually(
        "the leader compacted past the cut-off replica's log",
        || async {
            let leader = cluster.replica(1, cluster.leader(1)?)?;
            (leader.handle().status().first_index > last_index.next()).then_some(())
        },
    )
    .await;
    cluster.heal(1);
    let num = cluster.latest_config().await.num;
    cluster.wait_settled(num).await;
    eventually("the cut-off replica caught up by snapshot", || async {
        let status = cluster.replica(1, behind)?.handle().status();
        (status.first_index > last_index && status.applied > last_index).then_some(())
    })
    .await;
    // The clients stop first: a replica stopped while a client keeps a
    // connection to it keeps its database open (see `Cluster::restart`).
    let recorded = load.stop().await;
    for gid in [1, 2, 3] {
        cluster.stop_group(gid);
    }
    for gid in [1, 2, 3] {
        cluster.start_group(gid).await;
    }
    let client = cluster.client(DEADLINE).await;
    let checked = recorded.check(&client, 60).await;
    assert!(checked.appends_acknowledged > 30, "{checked:?}");
    cluster.stop();
}

// Goal: a group down across several reconfigurations catches up
// configuration by configuration when it restarts (lab "missed change"):
// every key keeps its value and takes writes after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missed_configuration_changes() {
    let mut cluster = Cluster::start_with(ClusterOptions::lab(1), &[1, 2, 3]).await;
    let first = cluster.join_many(&[1, 2, 3]).await;
    cluster.wait_settled(first).await;
    let client = cluster.client(DEADLINE).await;
    let keys = shard_keys();
    put_all(&client, &keys, "v").await;
    cluster.stop_group(3);
    cluster.leave(1).await;
    cluster.join(1).await;
    cluster.leave(2).await;
    let last = cluster.join(2).await;
    assert!(last.0 >= first.0 + 4, "four configurations while down");
    cluster.start_group(3).await;
    cluster.wait_settled(last).await;
    for table in cluster.tables(3) {
        assert_eq!(table.config().num, last, "group 3 caught up");
    }
    for (_, key) in &keys {
        client.append(key.as_bytes(), b"+").await.expect("append");
    }
    assert_values(&client, &keys, "v", |_| "+").await;
    cluster.stop();
}

// Goal: concurrent clients stay linearizable, each append applied once,
// through a long run of joins and leaves (lab "concurrent 1").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_clients_during_join_leave() {
    let mut cluster = Cluster::start_with(ClusterOptions::lab(1), &[1, 2, 3]).await;
    cluster.join(1).await;
    let load = Load::start(cluster.client(DEADLINE).await, 3, Workload::lab());
    let steps: [(bool, u64); 7] = [
        (true, 2),
        (true, 3),
        (false, 1),
        (false, 2),
        (true, 1),
        (true, 2),
        (false, 3),
    ];
    for (join, gid) in steps {
        load.wait_more(5).await;
        if join {
            cluster.join(gid).await;
        } else {
            cluster.leave(gid).await;
        }
    }
    let num = cluster.latest_config().await.num;
    cluster.wait_settled(num).await;
    let checked = load.finish_and_check(60).await;
    assert!(checked.appends_acknowledged > 30, "{checked:?}");
    cluster.stop();
}

// Goal: concurrent clients stay linearizable, each append applied once,
// while whole groups stop and restart in the middle of moves (lab
// "concurrent 3": state survives a restart of every replica of a group,
// and a move resumes where it was).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_clients_with_whole_group_restarts() {
    let mut cluster = Cluster::start_with(ClusterOptions::lab(1), &[1, 2, 3]).await;
    cluster.join(1).await;
    let load = Load::start(cluster.client(DEADLINE).await, 3, Workload::lab());
    load.wait_more(10).await;
    cluster.join(2).await;
    cluster.stop_group(1);
    cluster.join(3).await;
    cluster.start_group(1).await;
    load.wait_more(10).await;
    cluster.leave(1).await;
    cluster.stop_group(2);
    cluster.stop_group(3);
    cluster.start_group(3).await;
    cluster.start_group(2).await;
    load.wait_more(10).await;
    cluster.join(1).await;
    cluster.stop_group(1);
    cluster.start_group(1).await;
    let num = cluster.latest_config().await.num;
    cluster.wait_settled(num).await;
    load.wait_more(10).await;
    let checked = load.finish_and_check(60).await;
    assert!(checked.appends_acknowledged > 30, "{checked:?}");
    cluster.stop();
}

/// Values of the deletion scenario: 8 KiB each.
const BIG_VALUE_BYTES: usize = 8 << 10;

/// Returns `len` bytes no compression shrinks (a xorshift sequence), so
/// sizes on disk measure the data.
fn incompressible(len: usize) -> Vec<u8> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[0]
        })
        .collect()
}

// Goal: the old owner deletes the shards it handed over (lab "challenge
// 1"): once its shards moved away, every replica of the group that left,
// including one cut off during the moves that caught up after, holds
// none of their keys or sessions, and its storage, once reopened, shrinks
// back near what it held before the data arrived.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moved_shards_are_deleted_at_the_old_owner() {
    let options = ClusterOptions {
        compaction: Some((20, 5)),
        ..ClusterOptions::lab(1)
    };
    let mut cluster = Cluster::start_with(options, &[1, 2]).await;
    let num = cluster.join(1).await;
    cluster.wait_settled(num).await;
    let empty_bytes = cluster.data_dir_bytes(1, 0);
    let client = cluster.client(DEADLINE).await;
    let value = incompressible(BIG_VALUE_BYTES);
    let keys: Vec<String> = (0..200).map(|at| format!("big-{at}")).collect();
    for key in &keys {
        client.put(key.as_bytes(), &value).await.expect("put");
    }
    let full_bytes = cluster.data_dir_bytes(1, 0);
    let behind = (cluster.wait_leader(1).await + 1) % 3;
    cluster.pause(1, behind);
    cluster.join(2).await;
    let num = cluster.leave(1).await;
    cluster.heal(1);
    cluster.wait_settled(num).await;
    cluster.wait_empty(1).await;
    for shard in (0..SHARDS).map(ShardId) {
        let stored = cluster.stored(1, shard);
        assert_eq!(stored, vec![(0, 0); 3], "group 1 still stores {shard:?}");
    }
    for key in keys.iter().step_by(7) {
        let read = client.get(key.as_bytes()).await.expect("get");
        assert_eq!(read.as_deref(), Some(&value[..]), "{key} at group 2");
    }
    drop(client);
    cluster.stop_group(1);
    cluster.start_group(1).await;
    let left_bytes: Vec<u64> = (0..3)
        .map(|index| cluster.data_dir_bytes(1, index))
        .collect();
    // Reopened, each replica's RocksDB flushed its write-ahead log without
    // the deleted range: back near what it held before the data came.
    let near = empty_bytes + (full_bytes - empty_bytes) / 4;
    assert!(
        left_bytes.iter().all(|&bytes| bytes < near),
        "group 1 holds {left_bytes:?} bytes: empty {empty_bytes}, full {full_bytes}"
    );
    cluster.stop();
}

// Goal: shards that do not move keep serving while others cannot (lab
// "challenge 2, unaffected"): group 1 leaves while it has no quorum, so
// the shards it held cannot reach group 2; group 2's own shards answer
// reads and writes all along, group 1's wait, and every shard arrives
// once group 1 is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unaffected_shards_keep_serving_during_migration() {
    let mut cluster = Cluster::start_with(ClusterOptions::lab(1), &[1, 2]).await;
    let num = cluster.join_many(&[1, 2]).await;
    cluster.wait_settled(num).await;
    let config = cluster.latest_config().await;
    let client = cluster.client(DEADLINE).await;
    let keys = shard_keys();
    put_all(&client, &keys, "v").await;
    cluster.isolate_group(1);
    let num = cluster.leave(1).await;
    eventually("group 2 is pulling group 1's shards", || async {
        let pulling = cluster.tables(2).iter().all(|table| {
            table.config().num == num
                && table
                    .states()
                    .any(|(_, state)| matches!(state, ShardState::Pulling { .. }))
        });
        pulling.then_some(())
    })
    .await;
    let stays = |shard| config.owner(shard) == Some(GroupId(2));
    let short = Arc::new(cluster.client(SHORT).await);
    for (shard, read) in try_reads(&short, &keys).await {
        if stays(shard) {
            let expected = format!("v-{}", shard.0);
            assert_eq!(read.expect("served").as_deref(), Some(expected.as_bytes()));
            let key = &keys[shard.0 as usize].1;
            short.append(key.as_bytes(), b"+").await.expect("append");
        } else {
            assert!(read.is_err(), "{shard:?} has not arrived");
        }
    }
    cluster.heal(1);
    cluster.wait_settled(num).await;
    let appended = |shard| if stays(shard) { "+" } else { "" };
    assert_values(&client, &keys, "v", appended).await;
    cluster.stop();
}

// Goal: a group whose new shards come from two groups serves those that
// arrived while the others cannot (lab "challenge 2, partial"): groups 1
// and 2 leave together while group 2 has no quorum; group 3 serves its own
// shards and group 1's at once, and group 2's once it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partially_migrated_group_serves_what_has_arrived() {
    let mut cluster = Cluster::start_with(ClusterOptions::lab(1), &[1, 2, 3]).await;
    let num = cluster.join_many(&[1, 2, 3]).await;
    cluster.wait_settled(num).await;
    let config = cluster.latest_config().await;
    let client = cluster.client(DEADLINE).await;
    let keys = shard_keys();
    put_all(&client, &keys, "v").await;
    cluster.isolate_group(2);
    let num = cluster.leave_many(&[1, 2]).await;
    let from_two = |shard| config.owner(shard) == Some(GroupId(2));
    for (shard, _) in keys.iter().filter(|(shard, _)| !from_two(*shard)) {
        cluster.wait_serving(3, *shard).await;
    }
    for table in cluster.tables(3) {
        assert_eq!(table.config().num, num);
        for (shard, _) in keys.iter().filter(|(shard, _)| from_two(*shard)) {
            let pulling = ShardState::Pulling { from: GroupId(2) };
            assert_eq!(table.state(*shard), Some(pulling), "{shard:?}");
        }
    }
    let short = Arc::new(cluster.client(SHORT).await);
    for (shard, read) in try_reads(&short, &keys).await {
        if from_two(shard) {
            assert!(read.is_err(), "{shard:?} has not arrived");
        } else {
            let expected = format!("v-{}", shard.0);
            assert_eq!(read.expect("served").as_deref(), Some(expected.as_bytes()));
            let key = &keys[shard.0 as usize].1;
            short.append(key.as_bytes(), b"+").await.expect("append");
        }
    }
    cluster.heal(2);
    cluster.wait_settled(num).await;
    let appended = |shard| if from_two(shard) { "" } else { "+" };
    assert_values(&client, &keys, "v", appended).await;
    cluster.stop();
}

/// Sends `Append(key, value)` as `(client_id, seq)` to the replicas at
/// `addresses`, as a client retrying it would, until one answers OK.
async fn append_as(addresses: &[String], key: &str, value: &str, client_id: u64, seq: u64) {
    use proto::kv::v1::shard_kv_client::ShardKvClient;
    use proto::kv::v1::{PutRequest, Status as KvStatus};
    eventually("the append is answered", || async {
        for address in addresses {
            let Ok(mut client) = ShardKvClient::connect(format!("http://{address}")).await else {
                continue;
            };
            let request = PutRequest {
                key: bytes::Bytes::copy_from_slice(key.as_bytes()),
                value: bytes::Bytes::copy_from_slice(value.as_bytes()),
                client_id,
                seq,
            };
            if let Ok(reply) = client.append(request).await
                && reply.get_ref().status == KvStatus::Ok as i32
            {
                return Some(());
            }
        }
        None
    })
    .await;
}

// Goal: at most once across leader changes and migrations (DESIGN.md
// "Clients and semantics"): an append answered once, retried with the
// same (client id, seq) after its group's leader was cut off and a new
// one elected, then again at the shard's new owner after a move, is
// answered each time and applied once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_retried_across_leader_changes_and_migrations_apply_once() {
    let mut cluster = Cluster::start_with(ClusterOptions::lab(1), &[1, 2]).await;
    let num = cluster.join_many(&[1, 2]).await;
    cluster.wait_settled(num).await;
    let config = cluster.latest_config().await;
    let shard = (0..SHARDS)
        .find(|shard| config.owner(ShardId(*shard)) == Some(GroupId(1)))
        .expect("group 1 owns a shard");
    let key = key_in_shard(shard, SHARDS);
    let (client_id, seq) = (77, 1);
    append_as(&cluster.addresses(1), &key, "a;", client_id, seq).await;
    let old = cluster.wait_leader(1).await;
    cluster.pause(1, old);
    eventually("a new leader", || async {
        let leads = |index: usize| {
            cluster
                .replica(1, index)
                .is_some_and(|replica| replica.handle().status().role == raft::core::Role::Leader)
        };
        (0..3)
            .any(|index| index != old && leads(index))
            .then_some(())
    })
    .await;
    append_as(&cluster.addresses(1), &key, "a;", client_id, seq).await;
    cluster.heal(1);
    cluster.move_shard(shard, 2).await;
    cluster.wait_serving(2, ShardId(shard)).await;
    append_as(&cluster.addresses(2), &key, "a;", client_id, seq).await;
    let client = cluster.client(DEADLINE).await;
    let value = client.get(key.as_bytes()).await.expect("get");
    assert_eq!(value.as_deref(), Some(&b"a;"[..]), "applied once");
    cluster.stop();
}
