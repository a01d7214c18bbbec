//! [`CtrlerService`]: the public `kv.v1.ShardCtrler` gRPC service of one
//! controller replica (DESIGN.md "Public API"), a thin shell over the Raft
//! driver and the replica's [`SharedState`].
//!
//! Invariants:
//!
//! - Join, Leave and Move go through the log; the reply is what applying the
//!   entry answered, so a retried `(client_id, seq)` gets its first answer.
//! - Query is served by the leader only, after a read barrier (ReadIndex),
//!   so it is linearizable; a follower answers `WRONG_LEADER` with the
//!   leader's `host:port` as its hint, when it knows one.
//! - Watch is served by any replica: it streams configurations this replica
//!   has applied, each committed, in order from `from_num`, without gaps.
//! - One function maps outcomes to the wire: driver errors through the
//!   replica runtime's [`raft::replica::routing`] (routing outcomes are a
//!   reply `status`, a stopped or overloaded node is `UNAVAILABLE` or
//!   `RESOURCE_EXHAUSTED`), refusals through [`admin_status`]
//!   (`INVALID_ARGUMENT`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use proto::kv::v1 as pb;
use proto::kv::v1::shard_ctrler_server::{ShardCtrler, ShardCtrlerServer};
use raft::core::NodeId;
use raft::driver::{ProposeError, RaftHandle};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Response, Status};

use crate::command::Request;
use crate::convert::{join_request, leave_request, move_request};
use crate::error::AdminError;
use crate::metrics::{SHARDCTRLER_REQUEST_DURATION_SECONDS, SHARDCTRLER_REQUESTS_TOTAL};
use crate::shared::SharedState;
use crate::store_rocks::ApplyOutput;

/// Configurations buffered per watcher before the stream waits for it.
const WATCH_BUFFER_CONFIGS: usize = 16;

/// The operations of the service, a bounded metrics label.
#[derive(Debug, Clone, Copy)]
enum Op {
    Join,
    Leave,
    Move,
    Query,
    Watch,
}

impl Op {
    fn label(self) -> &'static str {
        match self {
            Op::Join => "join",
            Op::Leave => "leave",
            Op::Move => "move",
            Op::Query => "query",
            Op::Watch => "watch",
        }
    }
}

/// The ShardCtrler service of one controller replica.
#[derive(Clone)]
pub struct CtrlerService {
    handle: RaftHandle<ApplyOutput>,
    shared: Arc<SharedState>,
    /// The gRPC address of every replica, for leader hints.
    peers: BTreeMap<NodeId, String>,
    /// This replica's id, a metrics label.
    node: String,
}

impl CtrlerService {
    /// Returns the service of the replica whose node is behind `handle` and
    /// whose applied state is `shared`; `peers` maps replica ids to their
    /// `host:port`.
    pub fn new(
        handle: RaftHandle<ApplyOutput>,
        shared: Arc<SharedState>,
        peers: BTreeMap<NodeId, String>,
        node: NodeId,
    ) -> CtrlerService {
        CtrlerService {
            handle,
            shared,
            peers,
            node: node.0.to_string(),
        }
    }

    /// Returns the tonic service, ready to mount next to the Raft service.
    pub fn into_server(self) -> ShardCtrlerServer<CtrlerService> {
        ShardCtrlerServer::new(self)
    }

    /// Proposes one request, stamped with this replica's clock (the
    /// leader's, if the proposal is accepted: sessions expire by it), and
    /// returns what applying it answered.
    async fn submit(&self, mut request: Request) -> Result<pb::CtrlReply, Status> {
        check_session(&request)?;
        request.timestamp_ms = raft::session::logged_time_ms();
        match self.handle.propose(Bytes::from(request.encode())).await {
            Ok((_, Some(Ok(config)))) => Ok(pb::CtrlReply {
                status: pb::Status::Ok as i32,
                leader_hint: String::new(),
                config: Some(config.to_proto()),
            }),
            Ok((_, Some(Err(error)))) => Err(admin_status(&error)),
            Ok((index, None)) => Err(Status::internal(format!(
                "log entry {} applied without a controller reply",
                index.0
            ))),
            Err(error) => {
                let (status, leader_hint) = self.routing(error)?;
                Ok(pb::CtrlReply {
                    status: status as i32,
                    leader_hint,
                    config: None,
                })
            }
        }
    }

    /// Returns configuration `num` once a read barrier confirmed this
    /// replica leads and has applied everything committed before the call.
    async fn query_config(&self, num: i64) -> Result<pb::QueryReply, Status> {
        if num < -1 {
            return Err(admin_status(&AdminError::InvalidConfigNum { num }));
        }
        if let Err(error) = self.handle.read_barrier().await {
            let (status, leader_hint) = self.routing(error)?;
            return Ok(pb::QueryReply {
                status: status as i32,
                leader_hint,
                config: None,
            });
        }
        let config = self
            .shared
            .read(|state| state.query(num).map(crate::types::Config::to_proto))
            .map_err(|error| admin_status(&error))?;
        Ok(pb::QueryReply {
            status: pb::Status::Ok as i32,
            leader_hint: String::new(),
            config: Some(config),
        })
    }

    /// Maps a driver error to a routing outcome (reply status and leader
    /// hint) with the replica runtime's one mapping ([`raft::replica::routing`]).
    fn routing(&self, error: ProposeError) -> Result<(pb::Status, String), Status> {
        let routed = raft::replica::routing(error, &self.peers)?;
        Ok((routed.status, routed.leader_hint))
    }

    /// Counts one answered request, by its `status` label, and its latency.
    fn observe(&self, op: Op, started: Instant, status: &'static str) {
        let node = self.node.clone();
        metrics::counter!(SHARDCTRLER_REQUESTS_TOTAL, "group" => crate::metrics::GROUP_LABEL, "node" => node.clone(), "op" => op.label(), "status" => status)
            .increment(1);
        metrics::histogram!(SHARDCTRLER_REQUEST_DURATION_SECONDS, "group" => crate::metrics::GROUP_LABEL, "node" => node, "op" => op.label())
            .record(started.elapsed().as_secs_f64());
    }

    /// Runs `call`, records its metrics and wraps its reply.
    async fn serve<T: ReplyStatus>(
        &self,
        op: Op,
        call: impl Future<Output = Result<T, Status>>,
    ) -> Result<Response<T>, Status> {
        let started = Instant::now();
        let outcome = call.await;
        let status = match &outcome {
            Ok(reply) => status_label(reply.status()),
            Err(error) => code_label(error.code()),
        };
        self.observe(op, started, status);
        outcome.map(Response::new)
    }
}

/// A reply that carries a routing status.
trait ReplyStatus {
    fn status(&self) -> i32;
}

impl ReplyStatus for pb::CtrlReply {
    fn status(&self) -> i32 {
        self.status
    }
}

impl ReplyStatus for pb::QueryReply {
    fn status(&self) -> i32 {
        self.status
    }
}

/// Returns the `status` label of a reply status.
fn status_label(status: i32) -> &'static str {
    match pb::Status::try_from(status) {
        Ok(pb::Status::Ok) => "ok",
        Ok(pb::Status::WrongLeader) => "wrong_leader",
        Ok(pb::Status::WrongGroup) => "wrong_group",
        Ok(pb::Status::ShardNotReady) => "shard_not_ready",
        Ok(pb::Status::Timeout) => "timeout",
        Err(_) => "unknown",
    }
}

/// Returns the `status` label of a gRPC error.
fn code_label(code: Code) -> &'static str {
    match code {
        Code::InvalidArgument => "invalid_argument",
        Code::Unavailable => "unavailable",
        Code::ResourceExhausted => "resource_exhausted",
        _ => "internal",
    }
}

/// Returns the gRPC error of a refused request: `INVALID_ARGUMENT` with the
/// refusal as its message (DESIGN.md "Public API").
pub fn admin_status(error: &AdminError) -> Status {
    Status::invalid_argument(error.to_string())
}

/// Refuses a request whose client id or seq is 0 before it reaches the log.
fn check_session(request: &Request) -> Result<(), Status> {
    if request.client_id == 0 || request.seq == 0 {
        return Err(admin_status(&AdminError::InvalidSession {
            client_id: request.client_id,
            seq: request.seq,
        }));
    }
    Ok(())
}

/// Sends every configuration from `next` on to `sender`, waiting for new
/// ones as they are applied, until the watcher goes away.
async fn stream_configs(
    shared: Arc<SharedState>,
    mut next: u64,
    sender: mpsc::Sender<Result<pb::Config, Status>>,
) {
    let mut latest = shared.subscribe();
    loop {
        // Mark the current number seen before reading, so a configuration
        // applied after the read wakes the wait below.
        latest.borrow_and_update();
        let batch = shared.configs_from(next, WATCH_BUFFER_CONFIGS);
        if batch.is_empty() {
            tokio::select! {
                changed = latest.changed() => if changed.is_err() { return },
                () = sender.closed() => return,
            }
            continue;
        }
        for config in batch {
            next = config.num.0 + 1;
            if sender.send(Ok(config.to_proto())).await.is_err() {
                return;
            }
        }
    }
}

#[tonic::async_trait]
impl ShardCtrler for CtrlerService {
    async fn join(
        &self,
        request: tonic::Request<pb::JoinRequest>,
    ) -> Result<Response<pb::CtrlReply>, Status> {
        let request = join_request(request.into_inner());
        self.serve(Op::Join, self.submit(request)).await
    }

    async fn leave(
        &self,
        request: tonic::Request<pb::LeaveRequest>,
    ) -> Result<Response<pb::CtrlReply>, Status> {
        let request = leave_request(request.into_inner());
        self.serve(Op::Leave, self.submit(request)).await
    }

    async fn r#move(
        &self,
        request: tonic::Request<pb::MoveRequest>,
    ) -> Result<Response<pb::CtrlReply>, Status> {
        let request = move_request(request.into_inner());
        self.serve(Op::Move, self.submit(request)).await
    }

    async fn query(
        &self,
        request: tonic::Request<pb::QueryRequest>,
    ) -> Result<Response<pb::QueryReply>, Status> {
        let num = request.into_inner().num;
        self.serve(Op::Query, self.query_config(num)).await
    }

    type WatchStream = ReceiverStream<Result<pb::Config, Status>>;

    async fn watch(
        &self,
        request: tonic::Request<pb::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let from = request.into_inner().from_num;
        // The stream itself is not timed: it lasts as long as the watcher.
        let (sender, receiver) = mpsc::channel(WATCH_BUFFER_CONFIGS);
        tokio::spawn(stream_configs(Arc::clone(&self.shared), from, sender));
        self.observe(Op::Watch, Instant::now(), "ok");
        Ok(Response::new(ReceiverStream::new(receiver)))
    }
}
