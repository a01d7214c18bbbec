//! The `shardkv` binary as a process: it learns its shard count from the
//! controller, becomes ready, answers a client, and exports its metrics
//! with the `group` and `node` labels. The controller here is a stand-in
//! answering `Query` with configuration 0 (4 shards, no group), so the
//! replica holds no shard and answers `WRONG_GROUP`.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{KillOnDrop, free_addresses, start_stand_in_controller};
use proto::kv::v1 as pb;
use raft::observability::http_get;

const DEADLINE: Duration = Duration::from_secs(30);

// Goal: a group replica process exports its metrics, every series labelled
// with its group and node, and `--probe` (a container's health check)
// tells a running server from none. Method: start it against the stand-in
// controller, wait until ready, send a Get, probe it and a free port,
// scrape /metrics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_replica_exports_its_metrics_with_group_and_node() {
    let ctrler_address = start_stand_in_controller(None);
    let dir = tempfile::tempdir().expect("temp dir");
    let addresses = free_addresses(2);
    let (listen, http) = (addresses[0].clone(), addresses[1].clone());
    let _replica = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_shardkv"))
            .args([
                "--gid", "7", "--id", "1", "--listen", &listen, "--http", &http,
            ])
            .args(["--peers", &format!("1={listen}")])
            .args(["--ctrler", &ctrler_address])
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
    assert_probe_tells_up_from_down(&ctrler_address, &http);
    let body = http_get(&http, "/metrics", DEADLINE).expect("GET /metrics");
    for name in [
        shardkv::metrics::SHARDKV_CONFIG_NUM,
        shardkv::metrics::SHARDKV_SHARDS,
        shardkv::metrics::SHARDKV_REQUESTS_TOTAL,
        "raft_term",
    ] {
        assert!(body.contains(name), "{name} missing from /metrics:\n{body}");
    }
    assert_one_wrong_group_get_counted(&body);
}

/// Asserts that `/metrics` (`body`) counts exactly one Get answered
/// `WRONG_GROUP`, labelled with the replica's group and node. Every op and
/// status series exists from the start, at zero.
fn assert_one_wrong_group_get_counted(body: &str) {
    let requests = body
        .lines()
        .find(|line| {
            line.starts_with(shardkv::metrics::SHARDKV_REQUESTS_TOTAL)
                && line.contains("op=\"get\"")
                && line.contains("status=\"wrong_group\"")
        })
        .unwrap_or_else(|| panic!("no get/wrong_group request series in /metrics:\n{body}"));
    for label in ["group=\"7\"", "node=\"1\""] {
        assert!(requests.contains(label), "{label} missing from {requests}");
    }
    assert!(
        requests.ends_with(" 1"),
        "one Get answered WRONG_GROUP, counted once: {requests}"
    );
}

/// Asserts that `shardkv --probe` succeeds against the server at `http`
/// and fails (exit code 1) where nothing listens.
fn assert_probe_tells_up_from_down(ctrler_address: &str, http: &str) {
    let probe = |http: &str| {
        Command::new(env!("CARGO_BIN_EXE_shardkv"))
            .args([
                "--probe",
                "--gid",
                "7",
                "--ctrler",
                ctrler_address,
                "--http",
                http,
            ])
            .stderr(Stdio::null())
            .status()
            .expect("shardkv --probe runs")
    };
    assert!(
        probe(http).success(),
        "--probe finds the running replica up"
    );
    let nowhere = free_addresses(1).remove(0);
    assert_eq!(
        probe(&nowhere).code(),
        Some(1),
        "nothing answers at {nowhere}"
    );
}
