//! The `shardkv` binary as a process: it learns its shard count from the
//! controller, becomes ready, answers a client, and exports its metrics
//! with the `group` and `node` labels. The controller here is a stand-in
//! answering `Query` with configuration 0 (4 shards, no group), so the
//! replica holds no shard and answers `WRONG_GROUP`.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use proto::kv::v1 as pb;
use proto::kv::v1::shard_ctrler_server::{ShardCtrler, ShardCtrlerServer};
use raft::observability::http_get;
use tonic::{Request, Response, Status};

const DEADLINE: Duration = Duration::from_secs(30);

/// A controller that knows only configuration 0.
struct InitialOnly;

#[tonic::async_trait]
impl ShardCtrler for InitialOnly {
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
        _: Request<pb::QueryRequest>,
    ) -> Result<Response<pb::QueryReply>, Status> {
        let config = proto::config::Config::initial(4);
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

/// Serves the stand-in controller on a free loopback port; returns it.
fn start_stand_in_controller() -> std::net::SocketAddr {
    let ctrler = TcpListener::bind("127.0.0.1:0").expect("free port");
    let ctrler_address = ctrler.local_addr().expect("address");
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(
        tokio::net::TcpListener::from_std({
            ctrler.set_nonblocking(true).expect("nonblocking");
            ctrler
        })
        .expect("tokio listener"),
    );
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(ShardCtrlerServer::new(InitialOnly))
            .serve_with_incoming(incoming),
    );
    ctrler_address
}

/// Kills the child process when dropped (a failed test leaves none).
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Returns `count` distinct free loopback addresses, bound together so no
/// port is handed out twice.
fn free_addresses(count: usize) -> Vec<String> {
    let listeners: Vec<TcpListener> = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("free port"))
        .collect();
    listeners
        .iter()
        .map(|listener| listener.local_addr().expect("address").to_string())
        .collect()
}

// Goal: a group replica process exports its metrics, every series labelled
// with its group and node. Method: start it against the stand-in
// controller, wait until ready, send a Get, scrape /metrics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_replica_exports_its_metrics_with_group_and_node() {
    let ctrler_address = start_stand_in_controller();
    let dir = tempfile::tempdir().expect("temp dir");
    let addresses = free_addresses(2);
    let (listen, http) = (addresses[0].clone(), addresses[1].clone());
    let _replica = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_shardkv"))
            .args([
                "--gid", "7", "--id", "1", "--listen", &listen, "--http", &http,
            ])
            .args(["--peers", &format!("1={listen}")])
            .args(["--ctrler", &ctrler_address.to_string()])
            .arg("--data-dir")
            .arg(dir.path().join("replica"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("shardkv starts"),
    );
    let started = Instant::now();
    let ready = || {
        http_get(&http, "/readyz", Duration::from_secs(1)).is_ok_and(|response| {
            response.starts_with("HTTP/1.0 200") || response.starts_with("HTTP/1.1 200")
        })
    };
    while !ready() {
        assert!(
            started.elapsed() < DEADLINE,
            "not ready within {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut client = pb::shard_kv_client::ShardKvClient::connect(format!("http://{listen}"))
        .await
        .expect("connects");
    let reply = client
        .get(pb::GetRequest {
            key: bytes::Bytes::from_static(b"k"),
        })
        .await
        .expect("answers")
        .into_inner();
    assert_eq!(
        reply.status,
        pb::Status::WrongGroup as i32,
        "no shard is group 7's"
    );
    let body = http_get(&http, "/metrics", DEADLINE).expect("GET /metrics");
    for name in [
        shardkv::metrics::SHARDKV_CONFIG_NUM,
        shardkv::metrics::SHARDKV_SHARDS,
        shardkv::metrics::SHARDKV_REQUESTS_TOTAL,
        "raft_term",
    ] {
        assert!(body.contains(name), "{name} missing from /metrics:\n{body}");
    }
    let requests = body
        .lines()
        .find(|line| line.starts_with(shardkv::metrics::SHARDKV_REQUESTS_TOTAL))
        .expect("a request series");
    for label in [
        "group=\"7\"",
        "node=\"1\"",
        "op=\"get\"",
        "status=\"wrong_group\"",
    ] {
        assert!(requests.contains(label), "{label} missing from {requests}");
    }
}
