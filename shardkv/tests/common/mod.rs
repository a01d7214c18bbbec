//! What the process tests of `shardkv` share: free loopback addresses, a
//! child process killed on drop, and a stand-in controller.

use std::net::TcpListener;
use std::process::Child;
use std::sync::{Arc, Mutex};

use proto::config::{Config, ConfigNum, GroupId};
use proto::kv::v1 as pb;
use proto::kv::v1::shard_ctrler_server::{ShardCtrler, ShardCtrlerServer};
use tonic::{Request, Response, Status};

pub use test_ports::free_addresses;

/// The stand-in controller's shard count.
pub const SHARDS: u32 = 4;

/// Kills the child process when dropped (a failed test leaves none).
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A controller that answers `Query` only, from a list of configurations
/// the test extends (`num` past the latest, or -1, answers the latest).
struct StandIn {
    configs: Arc<Mutex<Vec<Config>>>,
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
        let configs = self.configs.lock().expect("not poisoned");
        let latest = configs.len() - 1;
        let num = usize::try_from(request.into_inner().num).map_or(latest, |num| num.min(latest));
        let config = configs[num].clone();
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

/// A running stand-in controller.
pub struct StandInController {
    /// Its `host:port`.
    pub address: String,
    configs: Arc<Mutex<Vec<Config>>>,
}

impl StandInController {
    /// Publishes the configuration after the latest: `shards[i]` is the
    /// gid owning shard `i`; `groups` are every group's servers.
    pub fn publish(&self, shards: &[u64], groups: &[(u64, Vec<String>)]) {
        let mut configs = self.configs.lock().expect("not poisoned");
        let num = ConfigNum(configs.len() as u64);
        configs.push(Config {
            num,
            shards: shards.iter().map(|gid| GroupId(*gid)).collect(),
            groups: groups
                .iter()
                .map(|(gid, servers)| (GroupId(*gid), servers.clone()))
                .collect(),
        });
    }
}

/// Serves a stand-in controller holding configuration 0 only, on a free
/// loopback port.
pub fn serve_stand_in_controller() -> StandInController {
    let listener = TcpListener::bind("127.0.0.1:0").expect("free port");
    let address = listener.local_addr().expect("address").to_string();
    listener.set_nonblocking(true).expect("nonblocking");
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(
        tokio::net::TcpListener::from_std(listener).expect("tokio listener"),
    );
    let configs = Arc::new(Mutex::new(vec![Config::initial(SHARDS)]));
    let service = StandIn {
        configs: Arc::clone(&configs),
    };
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(ShardCtrlerServer::new(service))
            .serve_with_incoming(incoming),
    );
    StandInController { address, configs }
}

/// Serves a stand-in controller and returns its address; `group` (gid,
/// servers) owns every shard from configuration 1.
pub fn start_stand_in_controller(group: Option<(u64, Vec<String>)>) -> String {
    let controller = serve_stand_in_controller();
    if let Some((gid, servers)) = group {
        controller.publish(&[gid; SHARDS as usize], &[(gid, servers)]);
    }
    controller.address
}
