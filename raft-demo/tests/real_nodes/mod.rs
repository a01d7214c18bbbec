//! In-process Raft nodes for integration tests: each node has its own
//! RocksDB in a temp dir, a gRPC server on a loopback port, a gRPC
//! transport wrapped in a fault-injecting layer, and the register map as
//! its application. Nodes can be killed (task aborted, no clean shutdown of
//! the node loop) and restarted from their data dir.

#![allow(dead_code, missing_docs)]

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use raft::core::{Membership, NodeId, Role};
use raft::driver::{NodeJoinHandle, NodeOptions, ProposeError, RaftHandle, spawn_node};
use raft::storage::RocksStorage;
use raft::transport::{Faults, FaultyTransport, GrpcTransport, RaftService, Transport};
use raft_demo::register::{RegisterCommand, RegisterMachine, RegisterReader};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub const GROUP: u64 = 1;

/// Waits until `condition` returns true, polling every 10 ms, or fails
/// with `what` after `deadline`.
pub async fn wait_for<F, Fut>(what: &str, deadline: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = tokio::time::Instant::now();
    while !condition().await {
        assert!(
            started.elapsed() < deadline,
            "timed out after {deadline:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub struct RunningNode {
    pub handle: RaftHandle<()>,
    /// The node's database (log and register map).
    pub db: Arc<rocksdb::DB>,
    pub reader: RegisterReader,
    pub faults: Faults,
    pub transport: Arc<FaultyTransport<GrpcTransport>>,
    node_task: NodeJoinHandle,
    server_task: JoinHandle<()>,
}

pub struct TestCluster {
    pub dir: tempfile::TempDir,
    pub addresses: BTreeMap<NodeId, String>,
    pub nodes: BTreeMap<NodeId, Option<RunningNode>>,
    pub options: fn(NodeId) -> NodeOptions,
}

/// Options for fast tests: 10 ms ticks (elections after 100-200 ms).
pub fn fast_options(id: NodeId) -> NodeOptions {
    let mut options = NodeOptions::new(GROUP, id);
    options.tick = Duration::from_millis(10);
    options.request_timeout = Duration::from_secs(3);
    options
}

impl TestCluster {
    /// Starts `voters` nodes bootstrapped as one group.
    pub async fn start(voters: u64, options: fn(NodeId) -> NodeOptions) -> TestCluster {
        let mut cluster = TestCluster {
            dir: tempfile::tempdir().expect("temp dir"),
            addresses: BTreeMap::new(),
            nodes: BTreeMap::new(),
            options,
        };
        let mut listeners = BTreeMap::new();
        for id in 1..=voters {
            let listener = bind_free().await;
            let address = listener.local_addr().expect("address").to_string();
            cluster.addresses.insert(NodeId(id), address);
            listeners.insert(NodeId(id), listener);
        }
        let membership = Membership::with_voters((1..=voters).map(NodeId));
        for (id, listener) in listeners {
            cluster
                .launch(id, listener, Some(membership.clone()))
                .await
                .expect("node starts");
        }
        cluster
    }

    pub fn data_dir(&self, id: NodeId) -> PathBuf {
        self.dir.path().join(format!("node-{id}"))
    }

    /// Starts node `id` on `listener`, bootstrapping with `membership` if
    /// its data dir is empty.
    pub async fn launch(
        &mut self,
        id: NodeId,
        listener: TcpListener,
        membership: Option<Membership>,
    ) -> Result<(), raft::core::Error> {
        let mut storage = RocksStorage::open(&self.data_dir(id))?;
        if storage.is_empty()
            && let Some(membership) = membership
        {
            storage.bootstrap(membership)?;
        }
        let db = storage.db();
        let machine = RegisterMachine::open(db.clone())?;
        let (inbound_sender, inbound) = raft::transport::inbound_queue(
            raft::transport::inbound::INBOUND_MESSAGES_MAX,
            raft::transport::inbound::INBOUND_BYTES_MAX,
        );
        let grpc = GrpcTransport::new(GROUP, id, self.addresses.clone());
        let transport = Arc::new(FaultyTransport::new(grpc, Faults::new(id.0)));
        let faults = transport.faults();
        let (handle, node_task) = spawn_node(
            (self.options)(id),
            storage,
            machine,
            transport.clone(),
            inbound,
        )?;
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        let service = RaftService::new(GROUP, inbound_sender).into_server();
        let server_task = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(incoming)
                .await;
        });
        let reader = RegisterReader::new(db.clone());
        self.nodes.insert(
            id,
            Some(RunningNode {
                handle,
                db,
                reader,
                faults,
                transport,
                node_task,
                server_task,
            }),
        );
        Ok(())
    }

    /// Kills node `id`: its tasks are aborted mid-flight and its database
    /// closed; what it persisted stays in its data dir.
    pub async fn kill(&mut self, id: NodeId) {
        if let Some(Some(node)) = self.nodes.insert(id, None) {
            node.node_task.abort();
            node.server_task.abort();
            let _ = node.node_task.await;
            let _ = node.server_task.await;
        }
    }

    /// Restarts a killed node on its old address.
    pub async fn restart(&mut self, id: NodeId) -> Result<(), raft::core::Error> {
        let address = self.addresses[&id].clone();
        let listener = bind_retrying(&address).await;
        self.launch(id, listener, None).await
    }

    /// Starts a new, empty node `id` that joins through a membership
    /// change; every running node learns its address.
    pub async fn add_joiner(&mut self, id: NodeId) {
        let listener = bind_free().await;
        let address = listener.local_addr().expect("address").to_string();
        self.addresses.insert(id, address.clone());
        for (_, node) in self.running() {
            node.transport.set_peer(id, address.clone());
        }
        self.launch(id, listener, None)
            .await
            .expect("joiner starts");
    }

    pub fn node(&self, id: NodeId) -> &RunningNode {
        self.nodes[&id].as_ref().expect("node is running")
    }

    pub fn running(&self) -> impl Iterator<Item = (NodeId, &RunningNode)> {
        self.nodes
            .iter()
            .filter_map(|(&id, node)| node.as_ref().map(|n| (id, n)))
    }

    /// Returns the running leader of the highest term.
    pub fn leader(&self) -> Option<NodeId> {
        self.running()
            .map(|(id, node)| (id, node.handle.status()))
            .filter(|(_, status)| status.role == Role::Leader)
            .max_by_key(|(_, status)| status.term)
            .map(|(id, _)| id)
    }

    pub async fn wait_for_leader(&self, deadline: Duration) -> NodeId {
        wait_for("a leader", deadline, || async { self.leader().is_some() }).await;
        self.leader().expect("checked")
    }

    /// Writes `key` = `value` through whichever node leads, retrying on
    /// NotLeader and timeouts until `deadline`.
    pub async fn put(&self, key: &str, value: &str, deadline: Duration) {
        let command = RegisterCommand::Put {
            key: Bytes::from(key.to_string()),
            value: Bytes::from(value.to_string()),
        };
        let started = tokio::time::Instant::now();
        loop {
            if let Some(leader) = self.leader() {
                match self.node(leader).handle.propose(command.encode()).await {
                    Ok(_) => return,
                    Err(
                        ProposeError::NotLeader { .. }
                        | ProposeError::Timeout { .. }
                        | ProposeError::OutcomeUnknown { .. }
                        | ProposeError::Overloaded { .. },
                    ) => {}
                    Err(other) => panic!("put {key} failed: {other}"),
                }
            }
            assert!(
                started.elapsed() < deadline,
                "put {key} not acknowledged within {deadline:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Returns the value of `key` on node `id`'s local state.
    pub fn local_value(&self, id: NodeId, key: &str) -> Option<String> {
        self.node(id)
            .reader
            .get(key.as_bytes())
            .expect("read")
            .map(|v| String::from_utf8(v).expect("utf-8"))
    }

    /// Waits until every running node holds `key` = `value`.
    pub async fn wait_replicated(&self, key: &str, value: &str, deadline: Duration) {
        let what = format!("{key}={value} on every running node");
        wait_for(&what, deadline, || async {
            self.running().all(|(_, node)| {
                // A node restoring a snapshot refuses reads: not there yet.
                node.reader
                    .get(key.as_bytes())
                    .is_ok_and(|held| held.as_deref() == Some(value.as_bytes()))
            })
        })
        .await;
    }
}

/// Binds a free port, outside the ports outgoing connections take (a
/// restart binds it again).
async fn bind_free() -> TcpListener {
    bind_retrying(&test_ports::free_addresses(1)[0]).await
}

/// Binds `address` again after a kill (the old socket may linger briefly).
async fn bind_retrying(address: &str) -> TcpListener {
    let started = tokio::time::Instant::now();
    loop {
        match TcpListener::bind(address).await {
            Ok(listener) => return listener,
            Err(error) => {
                assert!(
                    started.elapsed() < Duration::from_secs(10),
                    "cannot rebind {address}: {error}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}
