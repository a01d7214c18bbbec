//! The holder's side of a shard move (DESIGN.md "Reconfiguration in a
//! group"): the internal `shardkv.v1.ShardTransfer` service. A new owner
//! fetches the shard chunk by chunk, then asks for its deletion.
//!
//! Invariants:
//! - Both answer only on the holder's leader, after a read barrier, so
//!   they see every entry committed before the call.
//! - A chunk is served only while the shard is `Sending` to the asker in
//!   the move's configuration: the shard is frozen then, so chunks read
//!   from different views (a leader change between calls) fit together.
//! - The deletion goes through the holder's log (`HandOver`); asking again
//!   after it applied answers OK and changes nothing.

use std::collections::BTreeMap;

use bytes::Bytes;
use proto::config::{ConfigNum, GroupId, ShardId};
use proto::kv::v1::Status as KvStatus;
use proto::shardkv::v1::shard_transfer_server::{ShardTransfer, ShardTransferServer};
use proto::shardkv::v1::{
    DeleteShardReply, DeleteShardRequest, FetchChunkReply, FetchChunkRequest,
};
use raft::core::{NodeId, StorageError};
use raft::driver::RaftHandle;
use raft::replica::routing;
use tonic::{Request, Response, Status};

use crate::codec::chunk_to_proto;
use crate::machine::{Applied, GroupCommand};
use crate::store_rocks::GroupReader;

/// Chunks are at most this many bytes of records (1 MiB), whatever the
/// asker says (at least one record each).
const CHUNK_BYTES_MAX: u64 = 1 << 20;

/// The transfer service over the local replica.
pub struct TransferService {
    handle: RaftHandle<Option<Applied>>,
    reader: GroupReader,
    peers: BTreeMap<NodeId, String>,
}

impl TransferService {
    /// Returns the service over `handle` and `reader`; `peers` name the
    /// leader in redirects.
    pub fn new(
        handle: RaftHandle<Option<Applied>>,
        reader: GroupReader,
        peers: BTreeMap<NodeId, String>,
    ) -> TransferService {
        TransferService {
            handle,
            reader,
            peers,
        }
    }

    /// Returns the gRPC server of this service.
    pub fn into_server(self) -> ShardTransferServer<TransferService> {
        ShardTransferServer::new(self)
    }

    /// Waits for a read barrier; returns the redirect if this replica
    /// cannot serve.
    async fn barrier(&self) -> Result<Option<(KvStatus, String)>, Status> {
        match self.handle.read_barrier().await {
            Ok(_) => Ok(None),
            Err(error) => {
                let routed = routing(error, &self.peers)?;
                Ok(Some((routed.status, routed.leader_hint)))
            }
        }
    }

    /// Returns whether the shard of move `num` is gone from here
    /// ([`crate::shards::ShardTable::handed_over_since`]).
    fn gone(&self, shard: ShardId, num: ConfigNum) -> Result<bool, Status> {
        let table = self.reader.table().map_err(storage)?;
        Ok(table.handed_over_since(shard, num))
    }
}

fn storage(error: StorageError) -> Status {
    match error {
        StorageError::SnapshotUnavailable(index) => {
            Status::unavailable(format!("this replica is restoring a snapshot at {index}"))
        }
        other => Status::internal(other.to_string()),
    }
}

#[tonic::async_trait]
impl ShardTransfer for TransferService {
    async fn fetch_chunk(
        &self,
        request: Request<FetchChunkRequest>,
    ) -> Result<Response<FetchChunkReply>, Status> {
        let request = request.into_inner();
        if let Some((status, leader_hint)) = self.barrier().await? {
            return Ok(Response::new(FetchChunkReply {
                status: status as i32,
                leader_hint,
                chunk: None,
            }));
        }
        let chunk = self
            .reader
            .read_chunk(
                GroupId(request.to_gid),
                ShardId(request.shard),
                ConfigNum(request.config_num),
                &request.cursor,
                request.bytes_max.clamp(1, CHUNK_BYTES_MAX),
            )
            .map_err(storage)?;
        let status = match chunk {
            Some(_) => KvStatus::Ok,
            None => KvStatus::ShardNotReady,
        };
        Ok(Response::new(FetchChunkReply {
            status: status as i32,
            leader_hint: String::new(),
            chunk: chunk.as_ref().map(chunk_to_proto),
        }))
    }

    async fn delete_shard(
        &self,
        request: Request<DeleteShardRequest>,
    ) -> Result<Response<DeleteShardReply>, Status> {
        let request = request.into_inner();
        let (shard, num) = (ShardId(request.shard), ConfigNum(request.config_num));
        let reply = |status: KvStatus, leader_hint: String| {
            Ok(Response::new(DeleteShardReply {
                status: status as i32,
                leader_hint,
            }))
        };
        if let Some((status, leader_hint)) = self.barrier().await? {
            return reply(status, leader_hint);
        }
        if self.gone(shard, num)? {
            return reply(KvStatus::Ok, String::new());
        }
        let command = GroupCommand::HandOver {
            shard,
            to: GroupId(request.to_gid),
            num,
        };
        match self.handle.propose(Bytes::from(command.encode())).await {
            Ok((_, Some(Applied::HandOver(true)))) => reply(KvStatus::Ok, String::new()),
            Ok(_) if self.gone(shard, num)? => reply(KvStatus::Ok, String::new()),
            Ok(_) => reply(KvStatus::ShardNotReady, String::new()),
            Err(error) => {
                let routed = routing(error, &self.peers)?;
                reply(routed.status, routed.leader_hint)
            }
        }
    }
}
