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
    DeleteRequest, GetReply, GetRequest, JoinRequest, PutRequest, ServerList, Status as KvStatus,
    WriteReply,
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

/// One controller replica and group 1 of three replicas, in process.
struct Cluster {
    _dir: tempfile::TempDir,
    controller: Replica,
    group: Vec<GroupReplica>,
    ctrler_address: String,
    group_addresses: Vec<String>,
}

impl Cluster {
    /// Starts the controller (4 shards) and the group's replicas.
    async fn start() -> Cluster {
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
        let group_addresses = free_addresses(3);
        let mut group = Vec::new();
        for (id, address) in peers(&group_addresses) {
            let mut replica_options = replica::ReplicaOptions::new(
                1,
                id,
                address.parse().expect("address"),
                peers(&group_addresses),
                dir.path().join(format!("group-1-{}", id.0)),
            );
            replica_options.node.tick = TICK;
            let options = GroupOptions {
                replica: replica_options,
                ctrler: ctrler_addresses.clone(),
                config_poll: TICK,
            };
            group.push(
                GroupReplica::start(options)
                    .await
                    .expect("group replica starts"),
            );
        }
        Cluster {
            _dir: dir,
            controller,
            group,
            ctrler_address: ctrler_addresses[0].clone(),
            group_addresses,
        }
    }

    /// Joins the group to the controller.
    async fn join(&self) {
        let servers = ServerList {
            servers: self.group_addresses.clone(),
        };
        eventually("join", || async {
            let address = format!("http://{}", self.ctrler_address);
            let mut client = ShardCtrlerClient::connect(address).await.ok()?;
            let request = JoinRequest {
                groups: [(1, servers.clone())].into(),
                client_id: 1,
                seq: 1,
            };
            let reply = client.join(request).await.ok()?;
            (reply.get_ref().status == KvStatus::Ok as i32).then_some(())
        })
        .await;
    }

    /// Stops every replica.
    fn stop(self) {
        for replica in self.group {
            replica.stop();
        }
        self.controller.stop();
    }
}

// Goal: a group joined to the controller serves every operation at most
// once per (client id, seq) and refuses bad input with the limit named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joined_group_serves_writes_at_most_once_and_refuses_bad_input() {
    let cluster = Cluster::start().await;
    cluster.join().await;
    let client = GroupClient {
        addresses: cluster.group_addresses.clone(),
    };
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
