//! A controller and one replica group of three replicas, in process, over
//! real gRPC and RocksDB: the group joins, follows the controller to the
//! configuration that gives it every shard, and serves Put, Append, Get
//! and Delete at most once per (client id, seq), refusing bad input.

use std::time::{Duration, Instant};

use bytes::Bytes;
use kv_tests::harness::{Cluster, DEADLINE, TICK, eventually};
use kv_tests::history::{History, Workload, spawn_clients};
use proto::kv::v1::shard_kv_client::ShardKvClient;
use proto::kv::v1::{
    DeleteRequest, GetReply, GetRequest, PutRequest, Status as KvStatus, WriteReply,
};

/// A client of the group that tries every replica until one answers OK.
struct GroupClient {
    addresses: Vec<String>,
}

impl GroupClient {
    async fn connect(&self, index: usize) -> Option<ShardKvClient<tonic::transport::Channel>> {
        ShardKvClient::connect(format!("http://{}", self.addresses[index]))
            .await
            .ok()
    }

    /// Sends a write until a replica applies it; returns the gRPC error of
    /// a refused one.
    async fn write(&self, op: &str, request: PutRequest) -> Result<(), tonic::Status> {
        let start = Instant::now();
        loop {
            for index in 0..self.addresses.len() {
                let Some(mut client) = self.connect(index).await else {
                    continue;
                };
                let reply: Result<tonic::Response<WriteReply>, tonic::Status> = match op {
                    "put" => client.put(request.clone()).await,
                    "append" => client.append(request.clone()).await,
                    _ => {
                        client
                            .delete(DeleteRequest {
                                key: request.key.clone(),
                                client_id: request.client_id,
                                seq: request.seq,
                            })
                            .await
                    }
                };
                match reply {
                    Ok(reply) if reply.get_ref().status == KvStatus::Ok as i32 => return Ok(()),
                    Ok(_) => {}
                    Err(status) if status.code() == tonic::Code::InvalidArgument => {
                        return Err(status);
                    }
                    Err(_) => {}
                }
            }
            assert!(
                start.elapsed() < DEADLINE,
                "{op} not applied within {DEADLINE:?}"
            );
            tokio::time::sleep(TICK).await;
        }
    }

    /// Reads `key` from the leader, once a replica answers OK.
    async fn get(&self, key: &str) -> GetReply {
        eventually("get", || async {
            for index in 0..self.addresses.len() {
                let mut client = self.connect(index).await?;
                let request = GetRequest {
                    key: Bytes::copy_from_slice(key.as_bytes()),
                };
                if let Ok(reply) = client.get(request).await
                    && reply.get_ref().status == KvStatus::Ok as i32
                {
                    return Some(reply.into_inner());
                }
            }
            None
        })
        .await
    }
}

fn put_request(key: &str, value: &str, client_id: u64, seq: u64) -> PutRequest {
    PutRequest {
        key: Bytes::copy_from_slice(key.as_bytes()),
        value: Bytes::copy_from_slice(value.as_bytes()),
        client_id,
        seq,
    }
}

/// Returns a client trying every replica of every group of `cluster`.
fn group_client(cluster: &Cluster) -> GroupClient {
    GroupClient {
        addresses: cluster.all_addresses(),
    }
}

// Goal: a group joined to the controller serves every operation at most
// once per (client id, seq) and refuses bad input with the limit named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joined_group_serves_writes_at_most_once_and_refuses_bad_input() {
    let mut cluster = Cluster::start(&[1]).await;
    cluster.join(1).await;
    let client = group_client(&cluster);
    let missing = client.get("k").await;
    assert!(!missing.found, "a missing key reads as not found");
    client
        .write("put", put_request("k", "v", 7, 1))
        .await
        .expect("put");
    client
        .write("append", put_request("k", "x", 7, 2))
        .await
        .expect("append");
    client
        .write("append", put_request("k", "x", 7, 2))
        .await
        .expect("a retried append answers OK");
    let value = client.get("k").await;
    assert_eq!(
        (value.found, &value.value[..]),
        (true, &b"vx"[..]),
        "applied once"
    );
    client
        .write("delete", put_request("k", "", 7, 3))
        .await
        .expect("delete");
    assert!(!client.get("k").await.found);

    let empty = client.write("put", put_request("", "v", 8, 1)).await;
    assert_eq!(
        empty.expect_err("refused").code(),
        tonic::Code::InvalidArgument
    );
    let long_key = "k".repeat(4097);
    let refused = client
        .write("put", put_request(&long_key, "v", 8, 1))
        .await
        .expect_err("refused");
    assert!(refused.message().contains("4096"), "{}", refused.message());
    let no_session = client.write("put", put_request("k", "v", 0, 1)).await;
    assert_eq!(
        no_session.expect_err("refused").code(),
        tonic::Code::InvalidArgument
    );
    assert!(
        !client.get("k").await.found,
        "refused writes changed nothing"
    );
    cluster.stop();
}

// Goal: shards move between groups with their data and their sessions:
// after a join every key reads its value from its new owner, a write
// retried there is not applied twice, and after the first group leaves
// it holds nothing (its copies deleted) while every key still reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_move_with_their_data_and_sessions_on_join_and_leave() {
    let mut cluster = Cluster::start(&[1, 2]).await;
    cluster.join(1).await;
    let client = group_client(&cluster);
    let keys: Vec<String> = (0..12).map(|at| format!("key-{at}")).collect();
    for (seq, key) in (1..).zip(&keys) {
        client
            .write("put", put_request(key, "a", 7, seq))
            .await
            .expect("put");
    }
    cluster.join(2).await;
    for key in &keys {
        let value = client.get(key).await;
        assert_eq!(&value.value[..], b"a", "{key} after the join");
    }
    // The client's last write to a shard that moved to group 2 (the
    // controller rebalances shards 2 and 3 there), retried: its session
    // moved with the shard, so it is answered, not applied again.
    let (seq, moved) = (1u64..)
        .zip(&keys)
        .filter(|(_, key)| proto::shard_of_key(key.as_bytes(), 4) >= 2)
        .last()
        .expect("some key is in shard 2 or 3");
    client
        .write("append", put_request(moved, "b", 7, seq))
        .await
        .expect("the retry is answered");
    let value = client.get(moved).await;
    assert_eq!(&value.value[..], b"a", "the retry applied nothing");
    let last = keys.len() as u64;
    client
        .write("append", put_request(&keys[0], "b", 7, last + 1))
        .await
        .expect("append");
    cluster.leave(1).await;
    cluster.wait_empty(1).await;
    // The old owner's storage holds none of the moved shards' keys or
    // sessions.
    for replica in cluster.replicas(1) {
        for shard in (0..4).map(proto::config::ShardId) {
            let stored = replica.reader().stored(shard).expect("readable");
            assert_eq!(stored, (0, 0), "group 1 still stores {shard}");
        }
    }
    for (at, key) in keys.iter().enumerate() {
        let expected: &[u8] = if at == 0 { b"ab" } else { b"a" };
        assert_eq!(
            &client.get(key).await.value[..],
            expected,
            "{key} after the leave"
        );
    }
    cluster.stop();
}

// Goal: the data client keeps working while shards move: appends sent
// through it during a join and a leave are each applied exactly once, and
// every key reads its full value from its final owner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_client_rides_through_joins_and_leaves() {
    let mut cluster = Cluster::start(&[1, 2]).await;
    cluster.join(1).await;
    let ctrler = cluster.ctrler();
    let client = std::sync::Arc::new(
        client::Client::connect(&ctrler, client::CallOptions::default())
            .await
            .expect("client connects"),
    );
    const ROUNDS: usize = 25;
    let keys: Vec<String> = (0..8).map(|at| format!("key-{at}")).collect();
    let writer = {
        let (client, keys) = (client.clone(), keys.clone());
        tokio::spawn(async move {
            for round in 0..ROUNDS {
                for key in &keys {
                    let suffix = format!("{round}.");
                    client
                        .append(key.as_bytes(), suffix.as_bytes())
                        .await
                        .expect("append");
                }
            }
        })
    };
    cluster.join(2).await;
    cluster.leave(1).await;
    writer.await.expect("the writer finishes");
    cluster.wait_empty(1).await;
    let expected: String = (0..ROUNDS).map(|round| format!("{round}.")).collect();
    for key in &keys {
        let value = client.get(key.as_bytes()).await.expect("get");
        assert_eq!(value.as_deref(), Some(expected.as_bytes()), "{key}");
    }
    cluster.stop();
}

// Goal: `kvctl status` (client::status) reports every replica of every
// group, one leader per group, and each group serving exactly the shards
// the configuration gives it once the groups settled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_every_replica_one_leader_per_group_and_the_shards() {
    let mut cluster = Cluster::start(&[1, 2]).await;
    cluster.join(1).await;
    cluster.join(2).await;
    let ctrler = cluster.ctrler();
    let mut controller =
        client::CtrlerClient::new(&ctrler, client::CallOptions::default()).expect("client");
    let config = controller.query(-1).await.expect("latest configuration");
    let groups = eventually("every group settled and serving its shards", || async {
        let groups = client::status::replica_statuses(&config, Duration::from_secs(2)).await;
        let settled = groups.iter().all(|(gid, replicas)| {
            let owned: Vec<u32> = (0u32..)
                .zip(&config.shards)
                .filter(|(_, owner)| **owner == *gid)
                .map(|(shard, _)| shard)
                .collect();
            let leaders = replicas
                .iter()
                .filter(|r| r.reply.as_ref().is_ok_and(|reply| reply.role == "leader"))
                .count();
            leaders == 1
                && replicas.iter().all(|replica| {
                    replica.reply.as_ref().is_ok_and(|reply| {
                        let serving: Vec<u32> = reply.shards.iter().map(|s| s.shard).collect();
                        reply.config_num == config.num && serving == owned
                    })
                })
        });
        settled.then_some(groups)
    })
    .await;
    let table = client::status::status_table(&config, &groups);
    assert!(
        table.contains("group 1") && table.contains("group 2"),
        "{table}"
    );
    assert!(
        table.contains("leader") && table.contains("serving"),
        "{table}"
    );
    let json = client::status::status_json(&config, &groups);
    assert_eq!(json["groups"].as_array().map(Vec::len), Some(2));
    cluster.stop();
}

// Goal: concurrent clients stay linearizable, and no acknowledged write is
// lost or doubled, while groups join and leave and a whole group restarts
// in the middle of a reconfiguration (it misses configurations while
// down and catches up after). Method: three client tasks record their
// history; the checker judges it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_stay_linearizable_through_reconfigurations_and_a_group_restart() {
    let mut cluster = Cluster::start(&[1, 2, 3]).await;
    cluster.join(1).await;
    let ctrler = cluster.ctrler();
    let client = std::sync::Arc::new(
        client::Client::connect(&ctrler, client::CallOptions::default())
            .await
            .expect("client connects"),
    );
    let history = History::new();
    let clients = spawn_clients(&client, 3, &history, Workload::default());
    cluster.join(2).await;
    cluster.stop_group(2);
    cluster.join(3).await;
    cluster.leave(1).await;
    cluster.start_group(2).await;
    cluster.join(1).await;
    history.finish();
    for task in clients {
        task.await.expect("a client finishes");
    }
    let operations = history.operations();
    assert!(
        operations.iter().filter(|op| op.output.is_some()).count() > 50,
        "most operations completed"
    );
    match linearizability::check_kv_history(&operations, 2_000_000) {
        linearizability::CheckResult::Ok => {}
        other => panic!("not linearizable: {other:?}"),
    }
    cluster.stop();
}
