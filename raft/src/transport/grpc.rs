//! The gRPC transport: [`GrpcTransport`] sends a node's messages to its
//! peers over one long-lived client-streaming `Raft.Send` call per peer;
//! [`RaftService`] (in `service.rs`, re-exported here) receives them.
//!
//! Invariants:
//! - Each known peer has exactly one queue and one task (`peer.rs`); the
//!   task is aborted when the peer is removed, re-addressed (the queue
//!   then passes to the new task), or the transport dropped, so no task
//!   outlives its peer.
//! - [`Transport::send`] takes one short lock, pushes into the peers'
//!   bounded queues and returns; it never awaits and never blocks on I/O.
//! - Every message dropped by the sending side (unknown peer, full queue,
//!   peer removed with messages queued) is counted in
//!   `raft_messages_dropped_total{group,node}`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use metrics::{Counter, counter};
use tokio::runtime::Handle;
use tokio::task::JoinHandle;
use tracing::{debug, info};

use crate::core::{Message, NodeId};
use crate::metrics as names;
use crate::transport::peer::PeerStream;
use crate::transport::queue::PeerQueue;
use crate::transport::{PEER_QUEUE_BYTES_MAX, PEER_QUEUE_MESSAGES_MAX, Transport};

pub use crate::transport::service::RaftService;

/// Limits and timings of a [`GrpcTransport`].
#[derive(Clone, Debug)]
pub struct GrpcTransportConfig {
    /// Messages queued per peer before further ones are dropped.
    pub queue_messages_max: usize,
    /// Bytes of messages (approximate wire size) queued per peer before
    /// further ones are dropped.
    pub queue_bytes_max: u64,
    /// Approximate bytes in one `MessageBatch` beyond its first message.
    pub batch_bytes_max: u64,
    /// Delay before the first reconnection attempt.
    pub backoff_initial: Duration,
    /// Upper bound of the doubling reconnection delay.
    pub backoff_max: Duration,
    /// How long establishing a connection may take.
    pub connect_timeout: Duration,
    /// Interval of HTTP/2 pings that detect a dead connection.
    pub keep_alive_interval: Duration,
    /// How long a ping may go unanswered before the connection is dropped.
    pub keep_alive_timeout: Duration,
}

impl Default for GrpcTransportConfig {
    fn default() -> GrpcTransportConfig {
        GrpcTransportConfig {
            queue_messages_max: PEER_QUEUE_MESSAGES_MAX,
            queue_bytes_max: PEER_QUEUE_BYTES_MAX,
            batch_bytes_max: 4 << 20,
            backoff_initial: Duration::from_millis(50),
            backoff_max: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(1),
            keep_alive_interval: Duration::from_secs(2),
            keep_alive_timeout: Duration::from_secs(4),
        }
    }
}

/// One peer's queue and the task that drains it.
struct PeerLink {
    address: String,
    queue: Arc<PeerQueue>,
    task: JoinHandle<()>,
}

impl Drop for PeerLink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Sends one node's messages to the other replicas of its group over gRPC.
pub struct GrpcTransport {
    group: u64,
    self_id: NodeId,
    config: GrpcTransportConfig,
    /// The runtime peer tasks are spawned on, so peers can be set from any
    /// thread.
    runtime: Handle,
    /// Invariant: one link per peer, never one for `self_id`.
    peers: Mutex<BTreeMap<NodeId, PeerLink>>,
    dropped: Counter,
}

impl GrpcTransport {
    /// Returns a transport for node `self_id` of `group` that reaches each
    /// of `peers` at its `host:port`, with the default configuration. An
    /// entry for `self_id` itself is ignored.
    ///
    /// # Panics
    /// Panics when called outside a tokio runtime: peer tasks run on it.
    pub fn new(group: u64, self_id: NodeId, peers: BTreeMap<NodeId, String>) -> GrpcTransport {
        GrpcTransport::with_config(group, self_id, peers, GrpcTransportConfig::default())
    }

    /// Returns a transport like [`GrpcTransport::new`] with the given limits
    /// and timings.
    ///
    /// # Panics
    /// Panics when called outside a tokio runtime: peer tasks run on it.
    pub fn with_config(
        group: u64,
        self_id: NodeId,
        peers: BTreeMap<NodeId, String>,
        config: GrpcTransportConfig,
    ) -> GrpcTransport {
        let labels = [
            ("group", group.to_string()),
            ("node", self_id.0.to_string()),
        ];
        let transport = GrpcTransport {
            group,
            self_id,
            config,
            runtime: Handle::current(),
            peers: Mutex::new(BTreeMap::new()),
            dropped: counter!(names::RAFT_MESSAGES_DROPPED_TOTAL, &labels),
        };
        for (id, address) in peers {
            transport.set_peer(id, address);
        }
        transport
    }

    /// Returns a link to `peer` at `address` whose task drains `queue`.
    fn start_link(&self, peer: NodeId, address: String, queue: Arc<PeerQueue>) -> PeerLink {
        let stream = PeerStream {
            group: self.group,
            self_id: self.self_id,
            peer,
            address: address.clone(),
            queue: queue.clone(),
            config: self.config.clone(),
        };
        PeerLink {
            address,
            queue,
            task: self.runtime.spawn(stream.run()),
        }
    }

    /// Locks the peer map. Every update is one map call, so a poisoned lock
    /// still guards a consistent map and is used as is.
    fn lock_peers(&self) -> MutexGuard<'_, BTreeMap<NodeId, PeerLink>> {
        self.peers.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Transport for GrpcTransport {
    fn send(&self, messages: Vec<Message>) {
        let mut by_peer: BTreeMap<NodeId, Vec<Message>> = BTreeMap::new();
        for message in messages {
            by_peer.entry(message.to).or_default().push(message);
        }
        let mut dropped = 0;
        let peers = self.lock_peers();
        for (peer, messages) in by_peer {
            let count = messages.len();
            let lost = match peers.get(&peer) {
                Some(link) => link.queue.push(messages),
                None => count,
            };
            if lost > 0 {
                debug!(
                    peer = peer.0,
                    lost,
                    known = peers.contains_key(&peer),
                    "dropping messages"
                );
            }
            dropped += lost;
        }
        drop(peers);
        if dropped > 0 {
            self.dropped.increment(dropped as u64);
        }
    }

    fn set_peer(&self, id: NodeId, address: String) {
        if id == self.self_id {
            return;
        }
        let mut peers = self.lock_peers();
        if peers.get(&id).is_some_and(|link| link.address == address) {
            return;
        }
        info!(group = self.group, node = self.self_id.0, peer = id.0, %address, "peer address set");
        // A re-addressed peer keeps its queue: only the task is replaced
        // (the old one is aborted when its link drops).
        let queue = match peers.get(&id) {
            Some(link) => link.queue.clone(),
            None => Arc::new(PeerQueue::new(
                self.config.queue_messages_max,
                self.config.queue_bytes_max,
            )),
        };
        let link = self.start_link(id, address, queue);
        peers.insert(id, link);
    }

    fn remove_peer(&self, id: NodeId) {
        let removed = self.lock_peers().remove(&id);
        if let Some(link) = removed {
            info!(
                group = self.group,
                node = self.self_id.0,
                peer = id.0,
                "peer removed"
            );
            self.dropped.increment(link.queue.clear() as u64);
        }
    }
}
