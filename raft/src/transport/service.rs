//! The receiving side of the gRPC transport: [`RaftService`] implements the
//! `raft.v1.Raft` service and hands each peer's messages to the local node.
//!
//! Invariants:
//! - A batch reaches the node only whole and only if it names this
//!   server's group and every message in it converts; otherwise the stream
//!   is refused with `INVALID_ARGUMENT` and nothing of that batch is
//!   delivered.
//! - The stream is never blocked by the node: messages go into the node's
//!   inbound queue (bounded in messages and bytes) with `try_send`; when it
//!   is full they are
//!   dropped and counted in `raft_inbound_messages_dropped_total`.
//! - A stopped node (closed channel) ends the stream with `UNAVAILABLE`, so
//!   the peer backs off and retries.

use metrics::counter;
use proto::raft::v1 as pb;
use proto::raft::v1::raft_server::{Raft, RaftServer};
use tonic::{Request, Response, Status, Streaming};
use tracing::{debug, warn};

use crate::core::{Message, NodeId};
use crate::metrics as names;
use crate::transport::GRPC_MESSAGE_BYTES_MAX;
use crate::transport::convert::message_from_proto;
use crate::transport::error::Refused;
use crate::transport::error::TransportError;
use crate::transport::inbound::InboundSender;

/// Receives the Raft messages of one group and passes them to its node.
#[derive(Clone, Debug)]
pub struct RaftService {
    group: u64,
    inbound: InboundSender,
}

impl RaftService {
    /// Returns a service for `group` that hands messages to `inbound`, the
    /// node's bounded queue.
    pub fn new(group: u64, inbound: InboundSender) -> RaftService {
        RaftService { group, inbound }
    }

    /// Returns the tonic service, ready to mount next to other services on
    /// one server; it accepts messages up to
    /// [`GRPC_MESSAGE_BYTES_MAX`] (a snapshot chunk and its overhead fit).
    pub fn into_server(self) -> RaftServer<RaftService> {
        RaftServer::new(self)
            .max_decoding_message_size(GRPC_MESSAGE_BYTES_MAX)
            .max_encoding_message_size(GRPC_MESSAGE_BYTES_MAX)
    }

    /// Checks and delivers one batch.
    fn deliver(&self, batch: pb::MessageBatch) -> Result<(), TransportError> {
        if batch.group != self.group {
            return Err(TransportError::GroupMismatch {
                sent: batch.group,
                served: self.group,
            });
        }
        let messages = batch
            .messages
            .into_iter()
            .map(message_from_proto)
            .collect::<Result<Vec<Message>, _>>()?;
        for message in messages {
            let dropped = (message.from, message.to, message.body.kind_name());
            match self.inbound.try_send(message) {
                Ok(()) => {}
                Err(Refused::Full) => self.count_dropped(dropped),
                Err(Refused::Closed) => {
                    return Err(TransportError::NodeStopped { group: self.group });
                }
            }
        }
        Ok(())
    }

    fn count_dropped(&self, (from, to, kind): (NodeId, NodeId, &'static str)) {
        debug!(
            group = self.group,
            from = from.0,
            to = to.0,
            kind,
            "inbound queue full, dropping message"
        );
        counter!(
            names::RAFT_INBOUND_MESSAGES_DROPPED_TOTAL,
            "group" => self.group.to_string(),
            "node" => to.0.to_string()
        )
        .increment(1);
    }
}

#[tonic::async_trait]
impl Raft for RaftService {
    async fn send(
        &self,
        request: Request<Streaming<pb::MessageBatch>>,
    ) -> Result<Response<pb::BatchAck>, Status> {
        let mut stream = request.into_inner();
        while let Some(batch) = stream.message().await? {
            if let Err(error) = self.deliver(batch) {
                match error {
                    TransportError::NodeStopped { .. } => {
                        debug!(group = self.group, %error, "ending raft stream");
                    }
                    _ => warn!(group = self.group, %error, "refusing raft stream"),
                }
                return Err(error.to_status());
            }
        }
        Ok(Response::new(pb::BatchAck {}))
    }
}
