//! [`ReplicaServer`]: one running replica: its Raft node on the driver and
//! one gRPC server carrying the Raft peer service and the application's
//! services on the one `listen` address.
//!
//! Invariant: a replica stops with its value. [`ReplicaServer::stop`] is
//! the path to take; a replica dropped without it stops the same way (its
//! `Drop`), so no server task outlives it holding the port or handles on
//! a node.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::service::Routes;
use tonic::transport::server::TcpIncoming;

use crate::core::Membership;
use crate::driver::{NodeJoinHandle, RaftHandle, StateMachine, spawn_node};
use crate::replica::{ReplicaOptions, StartError, Stopped};
use crate::storage::RocksStorage;
use crate::transport::inbound::{INBOUND_BYTES_MAX, INBOUND_MESSAGES_MAX};
use crate::transport::{FaultyTransport, GrpcTransport, RaftService, Transport, inbound_queue};

/// Opens the replica's data dir, bootstrapping an empty one with the
/// voters of `options.peers`; a used one resumes, and its stored
/// membership wins over the options.
///
/// # Errors
/// [`StartError::Config`] if the options disagree,
/// [`StartError::Storage`] if the data dir cannot be opened or written.
pub fn open_storage(options: &ReplicaOptions) -> Result<RocksStorage, StartError> {
    options.validate().map_err(StartError::Config)?;
    let mut storage = RocksStorage::open(&options.data_dir)?;
    if storage.is_empty() {
        storage.bootstrap(Membership::with_voters(options.peers.keys().copied()))?;
    }
    Ok(storage)
}

/// A running replica; `O` is its state machine's apply output. Dropping
/// it stops it, as [`ReplicaServer::stop`] does.
pub struct ReplicaServer<O> {
    handle: RaftHandle<O>,
    local_address: SocketAddr,
    node_task: NodeJoinHandle,
    server_task: JoinHandle<Result<(), tonic::transport::Error>>,
    shutdown: Option<oneshot::Sender<()>>,
}

impl<O: Send + 'static> ReplicaServer<O> {
    /// Binds `options.listen`, starts the node on `storage` (from
    /// [`open_storage`]) and `machine` (opened over `storage.db()`), and
    /// serves the Raft peer service with the routes `services` returns for
    /// the node's handle, on the current tokio runtime. Peer messages go
    /// through `options.faults` when a test set them.
    ///
    /// # Errors
    /// [`StartError::Bind`] if the address cannot be bound,
    /// [`StartError::Node`] if the node refuses the stored state.
    pub async fn start<M: StateMachine<Output = O>>(
        options: ReplicaOptions,
        storage: RocksStorage,
        machine: M,
        services: impl FnOnce(RaftHandle<O>) -> Routes,
    ) -> Result<ReplicaServer<O>, StartError> {
        let bind_error = |source| StartError::Bind {
            address: options.listen,
            source,
        };
        let listener = tokio::net::TcpListener::bind(options.listen)
            .await
            .map_err(bind_error)?;
        let local_address = listener.local_addr().map_err(bind_error)?;
        let (group, id) = (options.group(), options.id());
        let (inbound_sender, inbound) = inbound_queue(INBOUND_MESSAGES_MAX, INBOUND_BYTES_MAX);
        let grpc = GrpcTransport::new(group, id, options.peers.clone());
        let transport: Arc<dyn Transport> = match options.faults {
            Some(faults) => Arc::new(FaultyTransport::new(grpc, faults)),
            None => Arc::new(grpc),
        };
        let (handle, node_task) = spawn_node(options.node, storage, machine, transport, inbound)?;
        let routes = services(handle.clone())
            .add_service(RaftService::new(group, inbound_sender).into_server());
        let (shutdown, shutdown_signal) = oneshot::channel();
        let server = tonic::transport::Server::builder()
            .add_routes(routes)
            // Replies go out at once: with Nagle's algorithm a reply split
            // over small writes waits for the client's delayed ACK (40 ms).
            .serve_with_incoming_shutdown(
                TcpIncoming::from(listener).with_nodelay(Some(true)),
                async {
                    let _ = shutdown_signal.await;
                },
            );
        tracing::info!(group, node = id.0, listen = %local_address, "replica serving");
        Ok(ReplicaServer {
            handle,
            local_address,
            node_task,
            server_task: tokio::spawn(server),
            shutdown: Some(shutdown),
        })
    }

    /// Returns the handle on the replica's Raft node.
    pub fn handle(&self) -> &RaftHandle<O> {
        &self.handle
    }

    /// Returns the address the gRPC server is bound to.
    pub fn local_address(&self) -> SocketAddr {
        self.local_address
    }

    /// Waits until the replica stops on its own: the Raft node ended or
    /// failed, or the gRPC server ended. Returns why.
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
    /// node's thread has ended, so its database is closed.
    pub fn stop(mut self) {
        self.signal_stop();
        // Dropping `node_task` with `self` waits for the node's thread.
    }
}

impl<O> ReplicaServer<O> {
    /// Tells the gRPC server to shut down, cancels its task (whose
    /// connection tasks then close: the server's end drops their shutdown
    /// watch) and tells the node to stop at its next wake-up. Waits for
    /// nothing; idempotent.
    fn signal_stop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        self.server_task.abort();
        self.node_task.abort();
    }
}

impl<O> Drop for ReplicaServer<O> {
    /// Stops a replica dropped without [`ReplicaServer::stop`]: nothing it
    /// started outlives it. The node's join handle, dropped next, waits for
    /// the node's thread, which the stop signal ends at once (as `stop`
    /// does, so the database is closed when the drop returns).
    fn drop(&mut self) {
        self.signal_stop();
    }
}
