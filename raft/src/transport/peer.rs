//! The task that carries one peer's queued messages over a long-lived
//! client-streaming `Raft.Send` call, reconnecting with backoff.
//!
//! Invariants:
//! - The task alone takes messages out of its peer's queue; the node's loop
//!   only pushes, so a slow or dead peer never blocks it.
//! - At most [`STREAM_BATCHES_IN_FLIGHT`] batches wait in front of the HTTP/2
//!   stream: when the peer stops reading (flow control), the task stops
//!   draining and the bounded queue fills and drops instead of memory
//!   growing.
//! - Everything queued at one moment leaves in one `MessageBatch`, bounded
//!   by `batch_bytes_max` (the first message of a batch always goes).
//! - After a failed attempt or a broken stream the task waits a jittered,
//!   doubling delay; a stream that carried batches resets the delay.

use std::sync::Arc;

use proto::raft::v1 as pb;
use proto::raft::v1::raft_client::RaftClient;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};
use tracing::{debug, warn};

use crate::core::{Message, NodeId};
use crate::transport::GRPC_MESSAGE_BYTES_MAX;
use crate::transport::backoff::Backoff;
use crate::transport::convert::message_to_proto;
use crate::transport::grpc::GrpcTransportConfig;
use crate::transport::queue::PeerQueue;

/// Batches handed to the HTTP/2 stream but not yet written by it.
const STREAM_BATCHES_IN_FLIGHT: usize = 2;

/// How one stream to the peer ended.
enum StreamEnd {
    /// The call returned: the peer refused or the connection broke.
    Finished(Result<(), Status>),
    /// The request body was dropped without the call returning in time.
    BodyDropped,
}

/// Everything the task of one peer needs.
pub(crate) struct PeerStream {
    /// The group every batch names.
    pub(crate) group: u64,
    /// The sending node.
    pub(crate) self_id: NodeId,
    /// The peer.
    pub(crate) peer: NodeId,
    /// The peer's gRPC endpoint, `host:port` or a full URI.
    pub(crate) address: String,
    /// The messages waiting for the peer.
    pub(crate) queue: Arc<PeerQueue>,
    /// Timings and limits.
    pub(crate) config: GrpcTransportConfig,
}

impl PeerStream {
    /// Runs until the task is aborted (the peer is removed or the transport
    /// dropped): connect, stream batches until the stream ends, back off,
    /// and again.
    pub(crate) async fn run(self) {
        let seed = self.group ^ self.self_id.0.rotate_left(21) ^ self.peer.0.rotate_left(42);
        let mut backoff = Backoff::new(self.config.backoff_initial, self.config.backoff_max, seed);
        loop {
            match self.connect().await {
                Ok(client) => {
                    debug!(peer = self.peer.0, address = %self.address, "connected to peer");
                    let (end, batches_sent) = self.stream_batches(client).await;
                    if batches_sent > 0 {
                        backoff.reset();
                    }
                    self.log_end(&end, batches_sent);
                }
                Err(error) => {
                    debug!(
                        peer = self.peer.0,
                        address = %self.address,
                        %error,
                        "cannot connect to peer"
                    );
                }
            }
            let delay = backoff.next_delay();
            debug!(
                peer = self.peer.0,
                delay_ms = delay.as_millis() as u64,
                "reconnecting"
            );
            tokio::time::sleep(delay).await;
        }
    }

    async fn connect(&self) -> Result<RaftClient<Channel>, tonic::transport::Error> {
        let uri = if self.address.contains("://") {
            self.address.clone()
        } else {
            format!("http://{}", self.address)
        };
        let channel = Endpoint::from_shared(uri)?
            .connect_timeout(self.config.connect_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(self.config.keep_alive_interval)
            .keep_alive_timeout(self.config.keep_alive_timeout)
            .keep_alive_while_idle(true)
            .connect()
            .await?;
        Ok(RaftClient::new(channel)
            .max_encoding_message_size(GRPC_MESSAGE_BYTES_MAX)
            .max_decoding_message_size(GRPC_MESSAGE_BYTES_MAX))
    }

    /// Feeds queued batches into one `Send` call until it ends; returns how
    /// it ended and how many batches it took.
    async fn stream_batches(&self, mut client: RaftClient<Channel>) -> (StreamEnd, u64) {
        let (batches, body) = mpsc::channel(STREAM_BATCHES_IN_FLIGHT);
        let call = client.send(ReceiverStream::new(body));
        tokio::pin!(call);
        let mut batches_sent = 0;
        loop {
            // Reserve room in front of the stream before draining the
            // queue, so messages wait in the bounded queue, not here.
            let permit = tokio::select! {
                result = &mut call => return (finished(result), batches_sent),
                permit = batches.reserve() => permit,
            };
            let Ok(permit) = permit else {
                let timeout = self.config.keep_alive_timeout;
                let end = match tokio::time::timeout(timeout, &mut call).await {
                    Ok(result) => finished(result),
                    Err(_) => StreamEnd::BodyDropped,
                };
                return (end, batches_sent);
            };
            let messages = tokio::select! {
                result = &mut call => return (finished(result), batches_sent),
                messages = self.queue.next_batch(self.config.batch_bytes_max) => messages,
            };
            permit.send(self.batch(messages));
            batches_sent += 1;
        }
    }

    fn batch(&self, messages: Vec<Message>) -> pb::MessageBatch {
        pb::MessageBatch {
            group: self.group,
            messages: messages.into_iter().map(message_to_proto).collect(),
        }
    }

    fn log_end(&self, end: &StreamEnd, batches_sent: u64) {
        let peer = self.peer.0;
        match end {
            StreamEnd::Finished(Err(status)) if status.code() == Code::InvalidArgument => {
                warn!(
                    peer,
                    code = ?status.code(),
                    message = status.message(),
                    "peer refused the stream"
                );
            }
            StreamEnd::Finished(Err(status)) => {
                debug!(
                    peer,
                    batches_sent,
                    code = ?status.code(),
                    message = status.message(),
                    "stream to peer broke"
                );
            }
            StreamEnd::Finished(Ok(())) => {
                debug!(peer, batches_sent, "peer closed the stream");
            }
            StreamEnd::BodyDropped => {
                debug!(peer, batches_sent, "stream to peer dropped its body");
            }
        }
    }
}

fn finished(result: Result<tonic::Response<pb::BatchAck>, Status>) -> StreamEnd {
    StreamEnd::Finished(result.map(|_| ()))
}
