//! One replica of a single Raft group serving a replicated register map
//! over the public `kv.v1.ShardKv` API (no sharding: every key lives in
//! this group). It exists to run and measure the Raft layer as separate
//! processes (kill -9 tests, the node benchmark) before the shard servers
//! arrive; it does not deduplicate retried writes (the shard servers do).

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use clap::Parser;
use proto::kv::v1::shard_kv_server::{ShardKv, ShardKvServer};
use proto::kv::v1::{
    DeleteRequest, GetReply, GetRequest, PutRequest, Status as KvStatus, WriteReply,
};
use raft::core::{Membership, NodeId, StorageError};
use raft::driver::{NodeOptions, ProposeError, RaftHandle, spawn_node};
use raft::exit_code::{CONFIG as EXIT_CONFIG, STORAGE as EXIT_STORAGE};
use raft::register::{KEY_BYTES_MAX, RegisterCommand, RegisterMachine, RegisterReader};
use raft::server_flags::ServerFlags;
use raft::storage::RocksStorage;
use raft::transport::grpc::{GrpcTransport, RaftService};
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
    /// Duration of a Raft tick in milliseconds (heartbeat: 1 tick,
    /// election timeout: 10 to 20 ticks).
    #[arg(long, env = "KV_TICK_MS", default_value_t = 100)]
    tick_ms: u64,
}

/// The ShardKv service over the local replica.
struct RegisterService {
    handle: RaftHandle<()>,
    reader: RegisterReader,
    peers: BTreeMap<NodeId, String>,
}

impl RegisterService {
    fn leader_hint(&self, error: &ProposeError) -> String {
        match error {
            ProposeError::NotLeader {
                leader_hint: Some(id),
            } => self.peers.get(id).cloned().unwrap_or_default(),
            _ => String::new(),
        }
    }

    /// Maps a driver error to a reply status, or a gRPC error.
    fn write_reply(
        &self,
        result: Result<(), ProposeError>,
    ) -> Result<Response<WriteReply>, Status> {
        let status = match &result {
            Ok(()) => KvStatus::Ok,
            Err(ProposeError::NotLeader { .. }) => KvStatus::WrongLeader,
            Err(ProposeError::Timeout { .. } | ProposeError::OutcomeUnknown { .. }) => {
                KvStatus::Timeout
            }
            Err(overloaded @ ProposeError::Overloaded { .. }) => {
                return Err(Status::resource_exhausted(overloaded.to_string()));
            }
            Err(other) => return Err(Status::unavailable(other.to_string())),
        };
        let leader_hint = result
            .err()
            .map(|e| self.leader_hint(&e))
            .unwrap_or_default();
        Ok(Response::new(WriteReply {
            status: status as i32,
            leader_hint,
        }))
    }

    async fn write(&self, command: RegisterCommand) -> Result<Response<WriteReply>, Status> {
        let result = self.handle.propose(command.encode()).await.map(|_| ());
        self.write_reply(result)
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
        if let Err(error) = self.handle.read_barrier().await {
            let status = match error {
                ProposeError::NotLeader { .. } => KvStatus::WrongLeader,
                ProposeError::Timeout { .. } => KvStatus::Timeout,
                other => return Err(Status::unavailable(other.to_string())),
            };
            let leader_hint = self.leader_hint(&error);
            return Ok(Response::new(GetReply {
                status: status as i32,
                leader_hint,
                found: false,
                value: Bytes::new(),
            }));
        }
        let value = self.reader.get(&key).map_err(|error| match error {
            StorageError::SnapshotUnavailable(_) => {
                Status::unavailable(format!("this replica is restoring a snapshot: {error}"))
            }
            other => Status::internal(other.to_string()),
        })?;
        Ok(Response::new(GetReply {
            status: KvStatus::Ok as i32,
            leader_hint: String::new(),
            found: value.is_some(),
            value: value.map(Bytes::from).unwrap_or_default(),
        }))
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
    raft::observability::init_logging();
    if let Err(message) = args.server.validate() {
        eprintln!("raft-node: {message}");
        return ExitCode::from(EXIT_CONFIG);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(run(args))
}

async fn run(args: Args) -> ExitCode {
    // First, so a stop signal during start-up is acted on once started.
    let termination = raft::termination::Termination::install();
    // Before anything registers a metric: handles taken earlier would
    // record into nothing.
    let metrics = match raft::observability::install_recorder() {
        Ok(metrics) => metrics,
        Err(message) => {
            tracing::error!(message, "metrics");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let id = NodeId(args.server.id);
    let mut storage = match RocksStorage::open(&args.server.data_dir) {
        Ok(storage) => storage,
        Err(error) => {
            tracing::error!(%error, dir = %args.server.data_dir.display(), "cannot open the data dir");
            return ExitCode::from(EXIT_STORAGE);
        }
    };
    if storage.is_empty() {
        let membership = Membership::with_voters(args.server.peers.keys().copied());
        if let Err(error) = storage.bootstrap(membership) {
            tracing::error!(%error, "cannot bootstrap the data dir");
            return ExitCode::from(EXIT_STORAGE);
        }
    }
    let db = storage.db();
    let machine = match RegisterMachine::open(db.clone()) {
        Ok(machine) => machine,
        Err(error) => {
            tracing::error!(%error, "cannot open the register map");
            return ExitCode::from(EXIT_STORAGE);
        }
    };
    let mut options = NodeOptions::new(args.group, id);
    options.tick = Duration::from_millis(args.tick_ms.max(1));
    options.compact_interval_entries = args.server.compact_interval.max(1);
    options.compact_keep_entries = args.server.compact_keep;
    let (inbound_sender, inbound) = raft::transport::inbound_queue(
        raft::transport::inbound::INBOUND_MESSAGES_MAX,
        raft::transport::inbound::INBOUND_BYTES_MAX,
    );
    let transport = Arc::new(GrpcTransport::new(
        args.group,
        id,
        args.server.peers.clone(),
    ));
    let (handle, node_task) = match spawn_node(options, storage, machine, transport, inbound) {
        Ok(started) => started,
        Err(error) => {
            tracing::error!(%error, "cannot start the raft node");
            return ExitCode::from(raft::exit_code::for_start_error(&error));
        }
    };
    serve(
        args,
        metrics,
        handle,
        RegisterReader::new(db),
        inbound_sender,
        node_task,
        termination,
    )
    .await
}

async fn serve(
    args: Args,
    metrics: metrics_exporter_prometheus::PrometheusHandle,
    handle: RaftHandle<()>,
    reader: RegisterReader,
    inbound: raft::transport::InboundSender,
    mut node_task: raft::driver::NodeJoinHandle,
    mut termination: raft::termination::Termination,
) -> ExitCode {
    let status = handle.watch_status();
    let ready: raft::observability::ReadinessProbe =
        Arc::new(move || status.borrow().leader.is_some());
    tokio::spawn(raft::observability::serve(args.server.http, metrics, ready));
    let service = RegisterService {
        handle: handle.clone(),
        reader,
        peers: args.server.peers.clone(),
    };
    let grpc = tonic::transport::Server::builder()
        .add_service(RaftService::new(args.group, inbound).into_server())
        .add_service(ShardKvServer::new(service))
        .serve(args.server.listen);
    tracing::info!(listen = %args.server.listen, http = %args.server.http, node = args.server.id, "raft-node serving");
    tokio::select! {
        served = grpc => {
            tracing::error!(result = ?served, "gRPC server stopped");
            ExitCode::from(EXIT_CONFIG)
        }
        finished = &mut node_task => match finished {
            Ok(Ok(())) => ExitCode::SUCCESS,
            Ok(Err(error)) => {
                tracing::error!(%error, "raft node stopped on a storage failure");
                ExitCode::from(raft::exit_code::for_storage_error(&error))
            }
            Err(panic) => {
                tracing::error!(%panic, "raft node task failed");
                ExitCode::from(EXIT_STORAGE)
            }
        },
        () = termination.requested() => {
            tracing::info!("termination requested, stopping");
            // Dropping the handle stops the node and waits for its thread;
            // the database closes when the runtime, whose connection tasks
            // hold the reader, is dropped at the end of `main`.
            drop(node_task);
            ExitCode::SUCCESS
        }
    }
}
