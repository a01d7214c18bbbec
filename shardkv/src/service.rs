//! The public `kv.v1.ShardKv` service of a group replica (DESIGN.md
//! "Public API", "Clients and semantics"): Get through a read barrier and
//! one consistent view; Put, Append and Delete through the group's log,
//! at most once per (client id, seq).
//!
//! Invariants:
//! - Bad input (an empty or too long key, a too long value, client id or
//!   seq 0) is refused with `INVALID_ARGUMENT` naming the limit before
//!   anything reaches the log; nothing changes.
//! - A reply's status is `OK` only for a read served by the shard's owner
//!   after a barrier, or a write applied (now or by an earlier attempt).

use std::collections::BTreeMap;
use std::time::Instant;

use bytes::Bytes;
use proto::kv::v1::shard_kv_server::{ShardKv, ShardKvServer};
use proto::kv::v1::{
    DeleteRequest, GetReply, GetRequest, PutRequest, Status as KvStatus, WriteReply,
};
use raft::core::{NodeId, StorageError};
use raft::driver::RaftHandle;
use raft::replica::routing;
use tonic::{Request, Response, Status};

use crate::machine::{Applied, GroupCommand, WriteRefused};
use crate::metrics::{Answer, Op, RequestMetrics};
use crate::ops::{InvalidInput, Write, WriteReply as Recorded, check_key};
use crate::shards::NotServed;
use crate::store_rocks::GroupReader;

/// The ShardKv service over the local replica.
pub struct GroupService {
    handle: RaftHandle<Option<Applied>>,
    reader: GroupReader,
    peers: BTreeMap<NodeId, String>,
    metrics: RequestMetrics,
}

impl GroupService {
    /// Returns the service over `handle`, reading through `reader`;
    /// `peers` name the leader in redirects.
    pub fn new(
        handle: RaftHandle<Option<Applied>>,
        reader: GroupReader,
        peers: BTreeMap<NodeId, String>,
    ) -> GroupService {
        GroupService {
            handle,
            reader,
            peers,
            metrics: RequestMetrics::register(),
        }
    }

    /// Returns the gRPC server of this service.
    pub fn into_server(self) -> ShardKvServer<GroupService> {
        ShardKvServer::new(self)
    }

    /// Proposes a client's write, stamped with this replica's clock, and
    /// returns its reply.
    async fn write(&self, client_id: u64, seq: u64, write: Write) -> Result<WriteReply, Status> {
        if client_id == 0 || seq == 0 {
            return Err(Status::invalid_argument(format!(
                "client id and seq must be non-zero (got {client_id} and {seq})"
            )));
        }
        write.check().map_err(invalid)?;
        let command = GroupCommand::Write {
            client_id,
            seq,
            timestamp_ms: raft::session::logged_time_ms(),
            write,
        };
        let status = match self.handle.propose(Bytes::from(command.encode())).await {
            Ok((_, Some(Applied::Write(Ok(Recorded::Ok))))) => KvStatus::Ok,
            Ok((_, Some(Applied::Write(Ok(Recorded::ValueTooLong { length }))))) => {
                return Err(invalid(InvalidInput::ValueTooLong { length }));
            }
            Ok((_, Some(Applied::Write(Err(WriteRefused::NotServed(why)))))) => status_of(why),
            Ok((_, Some(Applied::Write(Err(WriteRefused::Stale { last_seq }))))) => {
                return Err(Status::failed_precondition(format!(
                    "seq {seq} is older than this client's last write ({last_seq}): its reply is gone"
                )));
            }
            Ok((index, other)) => {
                return Err(Status::internal(format!(
                    "log entry {} applied with {other:?} instead of a write's reply",
                    index.0
                )));
            }
            Err(error) => {
                let routed = routing(error, &self.peers)?;
                return Ok(WriteReply {
                    status: routed.status as i32,
                    leader_hint: routed.leader_hint,
                });
            }
        };
        Ok(WriteReply {
            status: status as i32,
            leader_hint: String::new(),
        })
    }

    /// Returns `key`'s value once a read barrier confirmed this replica
    /// leads and has applied everything committed before the call.
    async fn read(&self, key: &[u8]) -> Result<GetReply, Status> {
        check_key(key).map_err(invalid)?;
        let reply = |status: KvStatus, leader_hint: String, value: Option<Bytes>| GetReply {
            status: status as i32,
            leader_hint,
            found: value.is_some(),
            value: value.unwrap_or_default(),
        };
        if let Err(error) = self.handle.read_barrier().await {
            let routed = routing(error, &self.peers)?;
            return Ok(reply(routed.status, routed.leader_hint, None));
        }
        match self.reader.get(key) {
            Ok(Ok(value)) => Ok(reply(KvStatus::Ok, String::new(), value)),
            Ok(Err(why)) => Ok(reply(status_of(why), String::new(), None)),
            Err(StorageError::SnapshotUnavailable(index)) => Err(Status::unavailable(format!(
                "this replica is restoring a snapshot at {index}"
            ))),
            Err(other) => Err(Status::internal(other.to_string())),
        }
    }

    /// Counts an answer and returns it as the gRPC response.
    fn answered<T>(
        &self,
        op: Op,
        started: Instant,
        result: Result<T, Status>,
        status_of: fn(&T) -> i32,
    ) -> Result<Response<T>, Status> {
        let answer = answer_of(result.as_ref().map(status_of));
        self.metrics.observe(op, answer, started.elapsed());
        result.map(Response::new)
    }
}

/// Returns the status of a shard not served here.
fn status_of(why: NotServed) -> KvStatus {
    match why {
        NotServed::WrongGroup => KvStatus::WrongGroup,
        NotServed::NotReady => KvStatus::ShardNotReady,
    }
}

/// Returns `INVALID_ARGUMENT` naming the limit passed.
fn invalid(why: InvalidInput) -> Status {
    Status::invalid_argument(why.to_string())
}

/// Returns the `status` label of an answer.
fn answer_of(status: Result<i32, &Status>) -> Answer {
    match status {
        Ok(status) => match KvStatus::try_from(status) {
            Ok(KvStatus::Ok) => Answer::Ok,
            Ok(KvStatus::WrongLeader) => Answer::WrongLeader,
            Ok(KvStatus::WrongGroup) => Answer::WrongGroup,
            Ok(KvStatus::ShardNotReady) => Answer::ShardNotReady,
            Ok(KvStatus::Timeout) => Answer::Timeout,
            Err(_) => Answer::Error,
        },
        Err(status) if status.code() == tonic::Code::InvalidArgument => Answer::InvalidArgument,
        Err(_) => Answer::Error,
    }
}

#[tonic::async_trait]
impl ShardKv for GroupService {
    async fn get(&self, request: Request<GetRequest>) -> Result<Response<GetReply>, Status> {
        let started = Instant::now();
        let key = request.into_inner().key;
        let result = self.read(&key).await;
        self.answered(Op::Get, started, result, |reply| reply.status)
    }

    async fn put(&self, request: Request<PutRequest>) -> Result<Response<WriteReply>, Status> {
        let PutRequest {
            key,
            value,
            client_id,
            seq,
        } = request.into_inner();
        let started = Instant::now();
        let result = self.write(client_id, seq, Write::Put { key, value }).await;
        self.answered(Op::Put, started, result, |reply| reply.status)
    }

    async fn append(&self, request: Request<PutRequest>) -> Result<Response<WriteReply>, Status> {
        let PutRequest {
            key,
            value,
            client_id,
            seq,
        } = request.into_inner();
        let started = Instant::now();
        let result = self
            .write(client_id, seq, Write::Append { key, value })
            .await;
        self.answered(Op::Append, started, result, |reply| reply.status)
    }

    async fn delete(
        &self,
        request: Request<DeleteRequest>,
    ) -> Result<Response<WriteReply>, Status> {
        let DeleteRequest {
            key,
            client_id,
            seq,
        } = request.into_inner();
        let started = Instant::now();
        let result = self.write(client_id, seq, Write::Delete { key }).await;
        self.answered(Op::Delete, started, result, |reply| reply.status)
    }
}
