//! One replica of a single Raft group serving a replicated register map
//! over the public `kv.v1.ShardKv` API (no sharding: every key lives in
//! this group). It exists to run and measure the Raft layer as separate
//! processes (kill -9 tests, the node benchmark) before the shard servers
//! arrive; it does not deduplicate retried writes (the shard servers do).

use std::collections::BTreeMap;
use std::process::ExitCode;

use bytes::Bytes;
use clap::Parser;
use proto::kv::v1::shard_kv_server::{ShardKv, ShardKvServer};
use proto::kv::v1::{
    DeleteRequest, GetReply, GetRequest, PutRequest, Status as KvStatus, WriteReply,
};
use raft::core::{NodeId, StorageError};
use raft::driver::RaftHandle;
use raft::replica::{ReplicaOptions, ReplicaServer, StartError, open_storage, routing};
use raft::server_flags::ServerFlags;
use raft_demo::register::{KEY_BYTES_MAX, RegisterCommand, RegisterMachine, RegisterReader};
use tonic::service::Routes;
use tonic::{Request, Response, Status};

/// Values are at most this long (DESIGN.md "Clients and semantics").
const VALUE_BYTES_MAX: usize = 1 << 20;

/// One replica of a Raft-replicated register map.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    server: ServerFlags,
    /// Raft group id (labels metrics, checked on peer traffic).
    #[arg(long, env = "KV_GROUP", default_value_t = 1)]
    group: u64,
}

/// The ShardKv service over the local replica.
struct RegisterService {
    handle: RaftHandle<()>,
    reader: RegisterReader,
    peers: BTreeMap<NodeId, String>,
}

impl RegisterService {
    /// Proposes `command`; the reply says whether it applied, or where to
    /// retry.
    async fn write(&self, command: RegisterCommand) -> Result<Response<WriteReply>, Status> {
        let reply = match self.handle.propose(command.encode()).await {
            Ok(_) => WriteReply {
                status: KvStatus::Ok as i32,
                leader_hint: String::new(),
            },
            Err(error) => {
                let routed = routing(error, &self.peers)?;
                WriteReply {
                    status: routed.status as i32,
                    leader_hint: routed.leader_hint,
                }
            }
        };
        Ok(Response::new(reply))
    }

    /// Returns `key`'s value once a read barrier confirmed this replica
    /// leads and has applied everything committed before the call.
    async fn read(&self, key: &[u8]) -> Result<GetReply, Status> {
        if let Err(error) = self.handle.read_barrier().await {
            let routed = routing(error, &self.peers)?;
            return Ok(GetReply {
                status: routed.status as i32,
                leader_hint: routed.leader_hint,
                found: false,
                value: Bytes::new(),
            });
        }
        let value = self.reader.get(key).map_err(|error| match error {
            StorageError::SnapshotUnavailable(_) => {
                Status::unavailable(format!("this replica is restoring a snapshot: {error}"))
            }
            other => Status::internal(other.to_string()),
        })?;
        Ok(GetReply {
            status: KvStatus::Ok as i32,
            leader_hint: String::new(),
            found: value.is_some(),
            value: value.map(Bytes::from).unwrap_or_default(),
        })
    }
}

fn check_key(key: &[u8]) -> Result<(), Status> {
    if key.len() > KEY_BYTES_MAX {
        return Err(Status::invalid_argument(format!(
            "key of {} bytes exceeds the limit of {KEY_BYTES_MAX} bytes",
            key.len()
        )));
    }
    Ok(())
}

fn check_value(value: &[u8]) -> Result<(), Status> {
    if value.len() > VALUE_BYTES_MAX {
        return Err(Status::invalid_argument(format!(
            "value of {} bytes exceeds the limit of {VALUE_BYTES_MAX} bytes",
            value.len()
        )));
    }
    Ok(())
}

#[tonic::async_trait]
impl ShardKv for RegisterService {
    async fn get(&self, request: Request<GetRequest>) -> Result<Response<GetReply>, Status> {
        let key = request.into_inner().key;
        check_key(&key)?;
        self.read(&key).await.map(Response::new)
    }

    async fn put(&self, request: Request<PutRequest>) -> Result<Response<WriteReply>, Status> {
        let request = request.into_inner();
        check_key(&request.key)?;
        check_value(&request.value)?;
        self.write(RegisterCommand::Put {
            key: request.key,
            value: request.value,
        })
        .await
    }

    async fn append(&self, request: Request<PutRequest>) -> Result<Response<WriteReply>, Status> {
        let request = request.into_inner();
        check_key(&request.key)?;
        check_value(&request.value)?;
        self.write(RegisterCommand::Append {
            key: request.key,
            value: request.value,
        })
        .await
    }

    async fn delete(
        &self,
        request: Request<DeleteRequest>,
    ) -> Result<Response<WriteReply>, Status> {
        let request = request.into_inner();
        check_key(&request.key)?;
        self.write(RegisterCommand::Delete { key: request.key })
            .await
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let options = ReplicaOptions::from_flags(args.group, &args.server);
    raft::replica::run("raft-node", options, &args.server, start)
}

/// Starts the replica of the register map on the data dir.
async fn start(options: ReplicaOptions) -> Result<ReplicaServer<()>, StartError> {
    let storage = open_storage(&options)?;
    let db = storage.db();
    let machine = RegisterMachine::open(db.clone())?;
    let peers = options.peers.clone();
    ReplicaServer::start(options, storage, machine, |handle| {
        Routes::new(ShardKvServer::new(RegisterService {
            handle,
            reader: RegisterReader::new(db),
            peers,
        }))
    })
    .await
}
