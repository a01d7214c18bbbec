//! The RPC floor: a `ShardKv` server that answers every write `OK` without
//! doing anything, run as its own process with the same runtime as
//! `raft-node`. Driving it with the benchmark's load generator measures
//! what the pinned unary `Put` alone costs on this machine (HTTP/2, gRPC,
//! loopback TCP, both ends), the ceiling no replicated write can pass.

use std::net::SocketAddr;

use bytes::Bytes;
use proto::kv::v1::shard_kv_server::{ShardKv, ShardKvServer};
use proto::kv::v1::{
    DeleteRequest, GetReply, GetRequest, PutRequest, Status as KvStatus, WriteReply,
};
use tonic::{Request, Response, Status};

/// Answers every request at once: writes `OK`, reads "not found".
struct NoopService;

fn ok() -> Response<WriteReply> {
    Response::new(WriteReply {
        status: KvStatus::Ok as i32,
        leader_hint: String::new(),
    })
}

#[tonic::async_trait]
impl ShardKv for NoopService {
    async fn get(&self, _: Request<GetRequest>) -> Result<Response<GetReply>, Status> {
        Ok(Response::new(GetReply {
            status: KvStatus::Ok as i32,
            leader_hint: String::new(),
            found: false,
            value: Bytes::new(),
        }))
    }

    async fn put(&self, _: Request<PutRequest>) -> Result<Response<WriteReply>, Status> {
        Ok(ok())
    }

    async fn append(&self, _: Request<PutRequest>) -> Result<Response<WriteReply>, Status> {
        Ok(ok())
    }

    async fn delete(&self, _: Request<DeleteRequest>) -> Result<Response<WriteReply>, Status> {
        Ok(ok())
    }
}

/// Serves the no-op service on `listen` until the process is killed, set
/// up like `raft-node`: its log subscriber, a multi-threaded runtime.
pub fn serve_noop(listen: SocketAddr) -> ! {
    raft::observability::init_logging();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let served = runtime.block_on(
        tonic::transport::Server::builder()
            .add_service(ShardKvServer::new(NoopService))
            .serve(listen),
    );
    panic!("no-op server on {listen} stopped: {served:?}");
}
