//! What the process tests of `shardkv` share: free loopback addresses, a
//! child process killed on drop, and a stand-in controller.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::process::Child;

use proto::config::{Config, ConfigNum, GroupId};
use proto::kv::v1 as pb;
use proto::kv::v1::shard_ctrler_server::{ShardCtrler, ShardCtrlerServer};
use tonic::{Request, Response, Status};

/// The stand-in controller's shard count.
pub const SHARDS: u32 = 4;

/// Returns `count` distinct free loopback addresses, bound together so no
/// port is handed out twice.
pub fn free_addresses(count: usize) -> Vec<String> {
    let listeners: Vec<TcpListener> = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("free port"))
        .collect();
    listeners
        .iter()
        .map(|listener| listener.local_addr().expect("address").to_string())
        .collect()
}

/// Kills the child process when dropped (a failed test leaves none).
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A controller that answers `Query` only: configuration 0, and, when it
/// has a group, configuration 1 giving that group every shard.
struct StandIn {
    group: Option<(u64, Vec<String>)>,
}

#[tonic::async_trait]
impl ShardCtrler for StandIn {
    async fn join(&self, _: Request<pb::JoinRequest>) -> Result<Response<pb::CtrlReply>, Status> {
        Err(Status::unimplemented("stand-in"))
    }

    async fn leave(&self, _: Request<pb::LeaveRequest>) -> Result<Response<pb::CtrlReply>, Status> {
        Err(Status::unimplemented("stand-in"))
    }

    async fn r#move(&self, _: Request<pb::MoveRequest>) -> Result<Response<pb::CtrlReply>, Status> {
        Err(Status::unimplemented("stand-in"))
    }

    async fn query(
        &self,
        request: Request<pb::QueryRequest>,
    ) -> Result<Response<pb::QueryReply>, Status> {
        let config = match (&self.group, request.into_inner().num) {
            (Some((gid, servers)), num) if num != 0 => Config {
                num: ConfigNum(1),
                shards: vec![GroupId(*gid); SHARDS as usize],
                groups: BTreeMap::from([(GroupId(*gid), servers.clone())]),
            },
            _ => Config::initial(SHARDS),
        };
        Ok(Response::new(pb::QueryReply {
            status: pb::Status::Ok as i32,
            leader_hint: String::new(),
            config: Some(config.to_proto()),
        }))
    }

    type WatchStream = tokio_stream::Empty<Result<pb::Config, Status>>;

    async fn watch(
        &self,
        _: Request<pb::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        Err(Status::unimplemented("stand-in"))
    }
}

/// Serves a stand-in controller on a free loopback port and returns its
/// address; `group` (gid, servers) owns every shard from configuration 1.
pub fn start_stand_in_controller(group: Option<(u64, Vec<String>)>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("free port");
    let address = listener.local_addr().expect("address").to_string();
    listener.set_nonblocking(true).expect("nonblocking");
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(
        tokio::net::TcpListener::from_std(listener).expect("tokio listener"),
    );
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(ShardCtrlerServer::new(StandIn { group }))
            .serve_with_incoming(incoming),
    );
    address
}
