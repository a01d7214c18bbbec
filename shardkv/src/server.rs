//! [`GroupReplica`]: one running replica of a replica group, everything the
//! `shardkv` binary and in-process tests start: the group store and the
//! public `ShardKv` service and the internal `ShardTransfer` service on the
//! replica runtime ([`raft::replica`]), and the task that follows the
//! controller and moves shards.
//!
//! Invariants:
//! - The Raft group id is the replica group's gid (labels its metrics,
//!   checked on peer traffic).
//! - The shard count is the stored one when the data dir holds a group,
//!   else the controller's (its configuration 0); a replica that can learn
//!   neither does not start.
//! - The follower task ends with the replica (stopped or dropped).

use std::time::Duration;

use proto::config::GroupId;
use raft::driver::RaftHandle;
use raft::replica::{self, ReplicaServer, StartError, Stopped};
use raft::storage::CF_META;
use rocksdb::DB;
use tonic::service::Routes;

use crate::admin::AdminService;
use crate::config_watch::{ControllerQueries, follow};
use crate::machine::Applied;
use crate::service::GroupService;
use crate::store_rocks::{GroupReader, GroupStore, decode_stored_shard_count};
use crate::transfer::TransferService;

/// How long a new group waits for the controller to tell its shard count.
const CONTROLLER_WAIT_MAX: Duration = Duration::from_secs(60);

/// How to run one group replica: the runtime's options (the Raft group id
/// is the gid) and the group's own.
#[derive(Debug, Clone)]
pub struct GroupOptions {
    /// The replica runtime's options.
    pub replica: replica::ReplicaOptions,
    /// The controller replicas (`host:port`).
    pub ctrler: Vec<String>,
    /// How often the leader asks the controller for the next
    /// configuration when its Watch stream announced none.
    pub config_poll: Duration,
}

/// A running group replica.
pub struct GroupReplica {
    server: ReplicaServer<Option<Applied>>,
    reader: GroupReader,
    follower: FollowerTask,
}

/// The follower task, aborted when dropped unless detached.
struct FollowerTask(Option<tokio::task::JoinHandle<()>>);

impl FollowerTask {
    /// Lets the task run on its own (it ends with the runtime).
    fn detach(mut self) {
        self.0.take();
    }
}

impl Drop for FollowerTask {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
        }
    }
}

impl GroupReplica {
    /// Opens (or bootstraps) the data dir, starts the Raft node, the
    /// service and the controller follower.
    ///
    /// # Errors
    ///
    /// [`StartError`] if the options are invalid, the data dir cannot be
    /// used, no controller replica tells the shard count of a new group,
    /// or an address cannot be bound.
    pub async fn start(options: GroupOptions) -> Result<GroupReplica, StartError> {
        let gid = GroupId(options.replica.group());
        if gid.is_unassigned() {
            return Err(StartError::Config(
                "gid 0 names no group: give --gid 1 or more".into(),
            ));
        }
        if options.ctrler.is_empty() {
            return Err(StartError::Config(
                "no controller address (--ctrler)".into(),
            ));
        }
        let storage = replica::open_storage(&options.replica)?;
        let db = storage.db();
        let mut controller = ControllerQueries::new(options.ctrler.clone());
        let shard_count = shard_count(&db, &mut controller).await?;
        let store = GroupStore::open(&storage, gid, shard_count)?;
        let reader = store.reader();
        let peers = options.replica.peers.clone();
        let service_reader = reader.clone();
        let replica_reader = reader.clone();
        let server = ReplicaServer::start(options.replica, storage, store, |handle| {
            let transfer =
                TransferService::new(handle.clone(), service_reader.clone(), peers.clone());
            let admin =
                AdminService::new(gid, handle.clone(), service_reader.clone(), peers.clone());
            Routes::new(GroupService::new(handle, service_reader, peers).into_server())
                .add_service(transfer.into_server())
                .add_service(admin.into_server())
        })
        .await?;
        let follower = FollowerTask(Some(tokio::spawn(follow(
            gid,
            server.handle().clone(),
            reader,
            controller,
            options.config_poll,
        ))));
        Ok(GroupReplica {
            server,
            reader: replica_reader,
            follower,
        })
    }

    /// Returns the Raft node's handle.
    pub fn handle(&self) -> &RaftHandle<Option<Applied>> {
        self.server.handle()
    }

    /// Returns the reader of the replica's applied state.
    pub fn reader(&self) -> &GroupReader {
        &self.reader
    }

    /// Returns the address the gRPC server listens on.
    pub fn local_address(&self) -> std::net::SocketAddr {
        self.server.local_address()
    }

    /// Waits until the replica stops on its own.
    pub async fn wait(&mut self) -> Stopped {
        self.server.wait().await
    }

    /// Stops the follower, the service and the node.
    pub fn stop(self) {
        drop(self.follower);
        self.server.stop();
    }

    /// Returns the runtime's server for [`raft::replica::run`]; the
    /// follower runs on until the process's runtime ends.
    pub fn into_server(self) -> ReplicaServer<Option<Applied>> {
        self.follower.detach();
        self.server
    }
}

/// Returns the shard count: the stored one, else the controller's.
async fn shard_count(db: &DB, controller: &mut ControllerQueries) -> Result<u32, StartError> {
    let meta = db
        .cf_handle(CF_META)
        .ok_or_else(|| StartError::Config("the data dir has no meta column family".into()))?;
    if let Some(count) = decode_stored_shard_count(db, meta)? {
        return Ok(count);
    }
    // A new group may start before the controller has a leader (the
    // cluster's processes start together): ask until it answers.
    let started = tokio::time::Instant::now();
    let mut pause = Duration::from_millis(50);
    let initial = loop {
        if let Some(initial) = controller.query(0).await {
            break initial;
        }
        if started.elapsed() >= CONTROLLER_WAIT_MAX {
            return Err(StartError::Config(format!(
                "no controller replica answered within {} s: a new group learns its shard count from the controller",
                CONTROLLER_WAIT_MAX.as_secs()
            )));
        }
        tracing::info!("waiting for the controller to learn the shard count");
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(1));
    };
    u32::try_from(initial.shard_count())
        .ok()
        .filter(|count| *count > 0)
        .ok_or_else(|| StartError::Config("the controller reports no shards".into()))
}
