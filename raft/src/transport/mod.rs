//! Carries Raft messages between the replicas of one group: the
//! [`Transport`] trait the driver sends through, its gRPC implementation
//! ([`GrpcTransport`] for sending, [`RaftService`] for receiving), the
//! conversion to and from the wire form ([`convert`]), and a
//! fault-injecting wrapper for tests ([`FaultyTransport`]).
//!
//! Invariants (DESIGN.md "Raft", STYLE.md B "never blocked by a peer"):
//! - Sending never blocks the node's loop: messages go into a bounded
//!   per-peer queue, and a message that does not fit is dropped and counted
//!   (`raft_messages_dropped_total`). Raft tolerates loss: the core resends
//!   on the next heartbeat or probe.
//! - Receiving never blocks a peer's stream: messages are handed to the
//!   node's inbound queue ([`inbound`], bounded in messages and bytes) with
//!   `try_send`, and dropped (counted in
//!   `raft_inbound_messages_dropped_total`) when it is full.
//! - Messages to one peer leave in the order they were sent, over one
//!   long-lived stream; across a reconnection, messages that were in flight
//!   may be lost, never duplicated or reordered by the transport itself.
//! - Only messages that convert cleanly reach the core: a malformed message
//!   or a batch of another group is refused with `INVALID_ARGUMENT`.

mod backoff;
pub mod convert;
pub mod error;
pub mod faulty;
pub mod grpc;
pub mod inbound;
mod peer;
mod queue;
mod service;

use crate::core::{Message, NodeId};

pub use error::{ConvertError, Refused, TransportError};
pub use faulty::{Faults, FaultyTransport};
pub use grpc::{GrpcTransport, GrpcTransportConfig, RaftService};
pub use inbound::{InboundReceiver, InboundSender, inbound_queue};

/// Messages a peer's queue holds before further ones are dropped.
pub const PEER_QUEUE_MESSAGES_MAX: usize = 4096;

/// Bytes of messages a peer's queue holds before further ones are dropped
/// (32 MiB): with 1 MiB values, 32 appends wait for a slow peer, not 4096.
pub const PEER_QUEUE_BYTES_MAX: u64 = 32 << 20;

/// The largest gRPC message either side accepts: a batch of appends or a
/// 1 MiB snapshot chunk with its overhead fits well within it.
pub const GRPC_MESSAGE_BYTES_MAX: usize = 16 << 20;

/// Sends a node's messages to its peers.
///
/// # Correctness
/// Implementations must:
/// - never block in [`Transport::send`]: the caller is the node's loop,
///   which must keep ticking whatever its peers do;
/// - keep the order of the messages to one peer (they may drop any of them,
///   as the network may);
/// - never deliver a message to a node other than its `to`.
pub trait Transport: Send + Sync + 'static {
    /// Queues the messages for their recipients (`Message::to`) and returns
    /// at once; messages to an unknown peer, or beyond a full queue, are
    /// dropped.
    fn send(&self, messages: Vec<Message>);

    /// Adds the peer `id` at `address` (`host:port`), or moves it there if
    /// it is known under another address.
    fn set_peer(&self, id: NodeId, address: String);

    /// Forgets the peer `id`; messages still queued for it are dropped.
    fn remove_peer(&self, id: NodeId);
}
