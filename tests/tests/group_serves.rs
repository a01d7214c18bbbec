//! A controller and one replica group of three replicas, in process, over
//! real gRPC and RocksDB: the group joins, follows the controller to the
//! configuration that gives it every shard, and serves Put, Append, Get
//! and Delete at most once per (client id, seq), refusing bad input.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use bytes::Bytes;
use proto::kv::v1::shard_ctrler_client::ShardCtrlerClient;
use proto::kv::v1::shard_kv_client::ShardKvClient;
use proto::kv::v1::{
    DeleteRequest, GetReply, GetRequest, JoinRequest, LeaveRequest, PutRequest, ServerList,
    Status as KvStatus, WriteReply,
};
use raft::core::NodeId;
use raft::replica;
use shardctrler::{Replica, ReplicaOptions};
use shardkv::server::{GroupOptions, GroupReplica};

const TICK: Duration = Duration::from_millis(20);
const DEADLINE: Duration = Duration::from_secs(30);

/// Returns `count` free loopback addresses.
fn free_addresses(count: usize) -> Vec<String> {
    let listeners: Vec<TcpListener> = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("free port"))
        .collect();
    listeners
        .iter()
        .map(|listener| listener.local_addr().expect("address").to_string())
        .collect()
}

fn peers(addresses: &[String]) -> BTreeMap<NodeId, String> {
    (1u64..)
        .zip(addresses)
        .map(|(id, address)| (NodeId(id), address.clone()))
        .collect()
}

/// Calls `call` until it returns `Some`, or panics at the deadline.
async fn eventually<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    mut call: impl FnMut() -> F,
) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = call().await {
            return value;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "{what}: no success within {DEADLINE:?}"
        );
        tokio::time::sleep(TICK).await;
    }
}

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

/// One controller replica and replica groups of three replicas each, in
/// process.
struct Cluster {
    _dir: tempfile::TempDir,
    controller: Replica,
    groups: BTreeMap<u64, Vec<GroupReplica>>,
    /// How each group's replicas were started, to start them again.
    options: BTreeMap<u64, Vec<GroupOptions>>,
    ctrler_address: String,
    addresses: BTreeMap<u64, Vec<String>>,
    next_seq: u64,
}

impl Cluster {
    /// Starts the controller (4 shards) and groups `gids`.
    async fn start(gids: &[u64]) -> Cluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let ctrler_addresses = free_addresses(1);
        let mut ctrler_options = ReplicaOptions::new(
            NodeId(1),
            ctrler_addresses[0].parse().expect("address"),
            peers(&ctrler_addresses),
            dir.path().join("ctrler"),
        );
        ctrler_options.shard_count = 4;
        ctrler_options.replica.node.tick = TICK;
        let controller = Replica::start(ctrler_options)
            .await
            .expect("controller starts");
        let (mut groups, mut addresses, mut all_options) =
            (BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
        for &gid in gids {
            let group_addresses = free_addresses(3);
            let (mut group, mut group_options) = (Vec::new(), Vec::new());
            for (id, address) in peers(&group_addresses) {
                let mut replica_options = replica::ReplicaOptions::new(
                    gid,
                    id,
                    address.parse().expect("address"),
                    peers(&group_addresses),
                    dir.path().join(format!("group-{gid}-{}", id.0)),
                );
                replica_options.node.tick = TICK;
                let options = GroupOptions {
                    replica: replica_options,
                    ctrler: ctrler_addresses.clone(),
                    config_poll: TICK,
                };
                group_options.push(options.clone());
                group.push(
                    GroupReplica::start(options)
                        .await
                        .expect("group replica starts"),
                );
            }
            groups.insert(gid, group);
            all_options.insert(gid, group_options);
            addresses.insert(gid, group_addresses);
        }
        Cluster {
            _dir: dir,
            controller,
            groups,
            options: all_options,
            ctrler_address: ctrler_addresses[0].clone(),
            addresses,
            next_seq: 1,
        }
    }

    /// Returns a client trying every replica of every group.
    fn client(&self) -> GroupClient {
        GroupClient {
            addresses: self.addresses.values().flatten().cloned().collect(),
        }
    }

    /// Runs one admin request against the controller until it answers OK.
    async fn admin(&mut self, join: Option<u64>, leave: Option<u64>) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let address = format!("http://{}", self.ctrler_address);
        eventually("admin", || async {
            let mut client = ShardCtrlerClient::connect(address.clone()).await.ok()?;
            let status = match (join, leave) {
                (Some(gid), _) => {
                    let servers = ServerList {
                        servers: self.addresses[&gid].clone(),
                    };
                    let request = JoinRequest {
                        groups: [(gid, servers)].into(),
                        client_id: 1,
                        seq,
                    };
                    client.join(request).await.ok()?.into_inner().status
                }
                (_, Some(gid)) => {
                    let request = LeaveRequest {
                        gids: vec![gid],
                        client_id: 1,
                        seq,
                    };
                    client.leave(request).await.ok()?.into_inner().status
                }
                _ => return None,
            };
            (status == KvStatus::Ok as i32).then_some(())
        })
        .await;
    }

    /// Joins group `gid` to the controller.
    async fn join(&mut self, gid: u64) {
        self.admin(Some(gid), None).await;
    }

    /// Removes group `gid` from the controller.
    async fn leave(&mut self, gid: u64) {
        self.admin(None, Some(gid)).await;
    }

    /// Stops every replica of group `gid` (their data dirs stay).
    async fn stop_group(&mut self, gid: u64) {
        for replica in self.groups.insert(gid, Vec::new()).unwrap_or_default() {
            replica.stop();
        }
    }

    /// Starts every replica of group `gid` again, on its data dir (a port
    /// is taken again once the stopped server released it).
    async fn start_group(&mut self, gid: u64) {
        let mut group = Vec::new();
        for options in self.options[&gid].clone() {
            let replica = eventually("the replica restarts", || {
                let options = options.clone();
                async move { GroupReplica::start(options).await.ok() }
            })
            .await;
            group.push(replica);
        }
        self.groups.insert(gid, group);
    }

    /// Waits until every replica of `gid` holds no shard.
    async fn wait_empty(&self, gid: u64) {
        eventually("the group hands over every shard", || async {
            let empty = self.groups[&gid].iter().all(|replica| {
                replica
                    .reader()
                    .table()
                    .is_ok_and(|table| table.states().next().is_none())
            });
            empty.then_some(())
        })
        .await;
    }

    /// Stops every replica.
    fn stop(self) {
        for replica in self.groups.into_values().flatten() {
            replica.stop();
        }
        self.controller.stop();
    }
}

// Goal: a group joined to the controller serves every operation at most
// once per (client id, seq) and refuses bad input with the limit named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joined_group_serves_writes_at_most_once_and_refuses_bad_input() {
    let mut cluster = Cluster::start(&[1]).await;
    cluster.join(1).await;
    let client = cluster.client();
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
    let client = cluster.client();
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
    for replica in &cluster.groups[&1] {
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
    let ctrler = [cluster.ctrler_address.clone()];
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
    let ctrler = [cluster.ctrler_address.clone()];
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

/// A history recorder shared by client tasks: a logical clock and the
/// operations with their call and return times.
#[derive(Default)]
struct History {
    clock: std::sync::atomic::AtomicU64,
    operations: std::sync::Mutex<Vec<linearizability::Operation>>,
    /// Set once the reconfigurations are over: the clients then finish.
    done: std::sync::atomic::AtomicBool,
}

impl History {
    fn tick(&self) -> u64 {
        self.clock.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1
    }
}

/// One client's run until the reconfigurations are over (24 steps at
/// least, 150 at most): appends with unique values and reads over a few
/// keys, each recorded with its call and return times (a failed call stays
/// pending: it may or may not have applied).
async fn run_client(
    client: std::sync::Arc<client::Client>,
    id: u64,
    history: std::sync::Arc<History>,
) {
    use linearizability::{KvInput, KvOutput, Operation};
    for step in 0..150u64 {
        if step >= 24 && history.done.load(std::sync::atomic::Ordering::SeqCst) {
            break;
        }
        let key = format!("k{}", (id + step) % 3);
        let read = step % 3 == 2;
        let call = history.tick();
        let (input, output) = if read {
            let value = client.get(key.as_bytes()).await;
            let output = value.ok().map(|value| {
                KvOutput::Value(
                    String::from_utf8_lossy(value.as_deref().unwrap_or_default()).into_owned(),
                )
            });
            (KvInput::Get, output)
        } else {
            let value = format!("{id}.{step};");
            let written = client.append(key.as_bytes(), value.as_bytes()).await;
            (
                KvInput::Append { value },
                written.ok().map(|()| KvOutput::Written),
            )
        };
        let ret = output.as_ref().map(|_| history.tick());
        history
            .operations
            .lock()
            .expect("not poisoned")
            .push(Operation {
                client: id,
                key,
                input,
                output,
                call,
                ret,
            });
    }
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
    let ctrler = [cluster.ctrler_address.clone()];
    let client = std::sync::Arc::new(
        client::Client::connect(&ctrler, client::CallOptions::default())
            .await
            .expect("client connects"),
    );
    let history = std::sync::Arc::new(History::default());
    let clients: Vec<_> = (1..=3)
        .map(|id| tokio::spawn(run_client(client.clone(), id, history.clone())))
        .collect();
    cluster.join(2).await;
    cluster.stop_group(2).await;
    cluster.join(3).await;
    cluster.leave(1).await;
    cluster.start_group(2).await;
    cluster.join(1).await;
    history
        .done
        .store(true, std::sync::atomic::Ordering::SeqCst);
    for task in clients {
        task.await.expect("a client finishes");
    }
    let operations = history.operations.lock().expect("not poisoned").clone();
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
