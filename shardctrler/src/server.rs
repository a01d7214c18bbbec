//! [`Replica`]: one running controller replica, everything the
//! `shardctrler` binary and in-process tests start: the controller's state
//! machine and its public `ShardCtrler` service on the replica runtime
//! ([`raft::replica`]), which owns the RocksDB data dir, the Raft node on
//! the driver, and the one gRPC server carrying both services on the one
//! `--listen` port.
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

use raft::core::NodeId;
use raft::driver::RaftHandle;
use raft::replica::{self, ReplicaServer};
use tonic::service::Routes;

use crate::error::StartError;
use crate::service::CtrlerService;
use crate::shared::SharedState;
use crate::store_rocks::{ApplyOutput, ControllerStore};

pub use raft::replica::Stopped;

/// The Raft group id of the controller (a label on its metrics, and checked
/// on peer traffic).
pub const CONTROLLER_GROUP: u64 = 0;

/// How to run one controller replica: the replica runtime's options (the
/// node's among them, `replica.node`: tick, compaction, the request
/// deadline) and the controller's own.
#[derive(Debug, Clone)]
pub struct ReplicaOptions {
    /// The replica runtime's options: the node (group
    /// [`CONTROLLER_GROUP`]), the gRPC address, the peers, the data dir.
    pub replica: replica::ReplicaOptions,
    /// The shard count of a new cluster (bootstrap only).
    pub shard_count: u32,
}

impl ReplicaOptions {
    /// Returns production defaults for replica `id` of `peers`: 64 shards,
    /// and the replica runtime's defaults ([`replica::ReplicaOptions::new`]:
    /// 100 ms ticks, compaction every 10,000 entries keeping 1,000, 5 s
    /// request deadline).
    pub fn new(
        id: NodeId,
        listen: SocketAddr,
        peers: BTreeMap<NodeId, String>,
        data_dir: PathBuf,
    ) -> ReplicaOptions {
        ReplicaOptions {
            replica: replica::ReplicaOptions::new(CONTROLLER_GROUP, id, listen, peers, data_dir),
            shard_count: 64,
        }
    }
}

/// A running controller replica.
pub struct Replica {
    server: ReplicaServer<ApplyOutput>,
    shared: Arc<SharedState>,
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
        Replica::start_with(options.replica, options.shard_count).await
    }

    /// Starts a replica run by the replica runtime's `options`, that
    /// bootstraps an empty data dir with `shard_count` shards (a used one
    /// keeps its own); see [`Replica::start`].
    ///
    /// # Errors
    ///
    /// As [`Replica::start`]; a shard count of 0 is a
    /// [`StartError::Config`].
    pub async fn start_with(
        options: replica::ReplicaOptions,
        shard_count: u32,
    ) -> Result<Replica, StartError> {
        if shard_count == 0 {
            return Err(StartError::Config(
                "the shard count must be at least 1".into(),
            ));
        }
        let storage = replica::open_storage(&options)?;
        let store = ControllerStore::open(storage.db(), shard_count, options.id().0)?;
        let shared = store.shared();
        let (peers, id, service_shared) =
            (options.peers.clone(), options.id(), Arc::clone(&shared));
        let server = ReplicaServer::start(options, storage, store, |handle| {
            Routes::new(CtrlerService::new(handle, service_shared, peers, id).into_server())
        })
        .await?;
        Ok(Replica { server, shared })
    }

    /// Returns the handle on the replica's Raft node.
    pub fn handle(&self) -> &RaftHandle<ApplyOutput> {
        self.server.handle()
    }

    /// Returns the replica's applied state.
    pub fn shared(&self) -> &Arc<SharedState> {
        &self.shared
    }

    /// Returns the address the gRPC server is bound to.
    pub fn local_address(&self) -> SocketAddr {
        self.server.local_address()
    }

    /// Waits until the replica stops on its own: the Raft node failed
    /// (storage) or the gRPC server ended. Returns why.
    pub async fn wait(&mut self) -> Stopped {
        self.server.wait().await
    }

    /// Stops serving and stops the node without waiting for requests in
    /// flight (they fail; their clients retry elsewhere). Returns once the
    /// node's thread has ended.
    pub fn stop(self) {
        self.server.stop();
    }

    /// Returns the running replica server, for the replica runtime's
    /// [`run`](raft::replica::run).
    pub fn into_server(self) -> ReplicaServer<ApplyOutput> {
        self.server
    }
}
