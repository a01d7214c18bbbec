//! [`Replica`]: one running controller replica, everything the
//! `shardctrler` binary and in-process tests start: the RocksDB data dir,
//! the Raft node on the driver, and one gRPC server carrying both the Raft
//! peer service and the public `ShardCtrler` service on the one `--listen`
//! port.
//!
//! Invariants:
//!
//! - An empty data dir is bootstrapped with the voters of `peers` and
//!   `shard_count` shards; a used one resumes and its stored membership and
//!   shard count win over the options (DESIGN.md "Public API", flags).
//! - The controller's Raft group is [`CONTROLLER_GROUP`] (0): gid 0 names no
//!   replica group, so peer traffic meant for a group is refused here.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use raft::core::{Membership, NodeId, StorageError};
use raft::driver::{NodeJoinHandle, NodeOptions, RaftHandle, spawn_node};
use raft::storage::RocksStorage;
use raft::transport::inbound::{INBOUND_BYTES_MAX, INBOUND_MESSAGES_MAX};
use raft::transport::{GrpcTransport, RaftService, inbound_queue};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;

use crate::error::StartError;
use crate::service::CtrlerService;
use crate::shared::SharedState;
use crate::store_rocks::{ApplyOutput, ControllerStore};

/// The Raft group id of the controller (a label on its metrics, and checked
/// on peer traffic).
pub const CONTROLLER_GROUP: u64 = 0;

/// How to run one controller replica.
#[derive(Debug, Clone)]
pub struct ReplicaOptions {
    /// This replica's id (non-zero, a key of `peers`).
    pub id: NodeId,
    /// The gRPC address to serve (Raft peers and the public API).
    pub listen: SocketAddr,
    /// Every replica of the controller group, itself included.
    pub peers: BTreeMap<NodeId, String>,
    /// The directory of this replica's RocksDB.
    pub data_dir: PathBuf,
    /// The shard count of a new cluster (bootstrap only).
    pub shard_count: u32,
    /// The duration of a Raft tick.
    pub tick: Duration,
    /// Compact the log every this many applied entries.
    pub compact_interval_entries: u64,
    /// Entries kept below the applied index at compaction.
    pub compact_keep_entries: u64,
    /// The deadline of one proposal or read barrier inside the replica.
    pub request_timeout: Duration,
}

impl ReplicaOptions {
    /// Returns production defaults for replica `id` of `peers`: 64 shards,
    /// 100 ms ticks, a snapshot every 1000 entries, 5 s request deadline.
    pub fn new(
        id: NodeId,
        listen: SocketAddr,
        peers: BTreeMap<NodeId, String>,
        data_dir: PathBuf,
    ) -> ReplicaOptions {
        ReplicaOptions {
            id,
            listen,
            peers,
            data_dir,
            shard_count: 64,
            tick: Duration::from_millis(100),
            compact_interval_entries: 10_000,
            compact_keep_entries: 1_000,
            request_timeout: Duration::from_secs(5),
        }
    }

    /// Checks that the options agree with each other.
    fn validate(&self) -> Result<(), StartError> {
        if self.id.0 == 0 {
            return Err(StartError::Config("the replica id must not be 0".into()));
        }
        if !self.peers.contains_key(&self.id) {
            return Err(StartError::Config(format!(
                "the peers must include this replica's id {}",
                self.id.0
            )));
        }
        if self.shard_count == 0 {
            return Err(StartError::Config(
                "the shard count must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// A running controller replica.
pub struct Replica {
    handle: RaftHandle<ApplyOutput>,
    shared: Arc<SharedState>,
    local_address: SocketAddr,
    node_task: NodeJoinHandle,
    server_task: JoinHandle<Result<(), tonic::transport::Error>>,
    shutdown: Option<oneshot::Sender<()>>,
}

impl Replica {
    /// Opens (or bootstraps) the data dir, starts the Raft node (on its own
    /// thread) and serves gRPC on `options.listen` on the current tokio
    /// runtime.
    ///
    /// # Errors
    ///
    /// Returns a [`StartError`] if the options disagree, the data dir cannot
    /// be used, or the address cannot be bound.
    pub async fn start(options: ReplicaOptions) -> Result<Replica, StartError> {
        options.validate()?;
        let mut storage = RocksStorage::open(&options.data_dir)?;
        if storage.is_empty() {
            storage.bootstrap(Membership::with_voters(options.peers.keys().copied()))?;
        }
        let store = ControllerStore::open(storage.db(), options.shard_count, options.id.0)?;
        let shared = store.shared();
        let listener = tokio::net::TcpListener::bind(options.listen)
            .await
            .map_err(|source| StartError::Bind {
                address: options.listen,
                source,
            })?;
        let local_address = listener.local_addr().map_err(|source| StartError::Bind {
            address: options.listen,
            source,
        })?;
        let (inbound_sender, inbound) = inbound_queue(INBOUND_MESSAGES_MAX, INBOUND_BYTES_MAX);
        let transport = Arc::new(GrpcTransport::new(
            CONTROLLER_GROUP,
            options.id,
            options.peers.clone(),
        ));
        let (handle, node_task) =
            spawn_node(node_options(&options), storage, store, transport, inbound)?;
        let service = CtrlerService::new(
            handle.clone(),
            Arc::clone(&shared),
            options.peers.clone(),
            options.id,
        );
        let (shutdown, shutdown_signal) = oneshot::channel();
        let server = tonic::transport::Server::builder()
            .add_service(RaftService::new(CONTROLLER_GROUP, inbound_sender).into_server())
            .add_service(service.into_server())
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                let _ = shutdown_signal.await;
            });
        tracing::info!(node = options.id.0, listen = %local_address, "controller replica serving");
        Ok(Replica {
            handle,
            shared,
            local_address,
            node_task,
            server_task: tokio::spawn(server),
            shutdown: Some(shutdown),
        })
    }

    /// Returns the handle on the replica's Raft node.
    pub fn handle(&self) -> &RaftHandle<ApplyOutput> {
        &self.handle
    }

    /// Returns the replica's applied state.
    pub fn shared(&self) -> &Arc<SharedState> {
        &self.shared
    }

    /// Returns the address the gRPC server is bound to.
    pub fn local_address(&self) -> SocketAddr {
        self.local_address
    }

    /// Waits until the replica stops on its own: the Raft node failed
    /// (storage) or the gRPC server ended. Returns why.
    pub async fn wait(&mut self) -> Stopped {
        tokio::select! {
            served = &mut self.server_task => match served {
                Ok(Ok(())) => Stopped::ServerEnded(String::from("shut down")),
                Ok(Err(error)) => Stopped::ServerEnded(error.to_string()),
                Err(panic) => Stopped::ServerEnded(panic.to_string()),
            },
            finished = &mut self.node_task => match finished {
                Ok(Ok(())) => Stopped::NodeEnded,
                Ok(Err(error)) => Stopped::Storage(error),
                Err(panic) => Stopped::NodePanicked(panic.to_string()),
            },
        }
    }

    /// Stops serving and stops the node without waiting for requests in
    /// flight (they fail; their clients retry elsewhere). Returns once the
    /// node's thread has ended, its database closed.
    pub fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        self.server_task.abort();
        self.node_task.abort();
    }
}

/// Why a replica stopped.
#[derive(Debug)]
pub enum Stopped {
    /// The gRPC server ended, with its reason.
    ServerEnded(String),
    /// The node stopped cleanly (every handle dropped).
    NodeEnded,
    /// The node stopped on a storage failure.
    Storage(StorageError),
    /// The node's task panicked (a corrupt entry or a failed write).
    NodePanicked(String),
}

fn node_options(options: &ReplicaOptions) -> NodeOptions {
    let mut node = NodeOptions::new(CONTROLLER_GROUP, options.id);
    node.tick = options.tick;
    node.compact_interval_entries = options.compact_interval_entries.max(1);
    node.compact_keep_entries = options.compact_keep_entries;
    node.request_timeout = options.request_timeout;
    node
}
