//! `kvctl` end to end: the real binary against a three-replica controller
//! running in this process (real gRPC on loopback, RocksDB in temp dirs).
//! Covers every admin command, table and JSON output, refusals and an
//! unreachable controller with their exit codes, and `config watch`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use raft::core::NodeId;
use shardctrler::{Replica, ReplicaOptions};
use test_ports::free_addresses;

const DEADLINE: Duration = Duration::from_secs(30);

/// Three in-process controller replicas of 10 shards with fast ticks.
struct Controller {
    _dir: tempfile::TempDir,
    addresses: Vec<String>,
    _replicas: Vec<Replica>,
}

impl Controller {
    async fn start() -> Controller {
        let dir = tempfile::tempdir().expect("temp dir");
        let addresses = free_addresses(3);
        let peers: BTreeMap<NodeId, String> = (1u64..)
            .zip(&addresses)
            .map(|(id, address)| (NodeId(id), address.clone()))
            .collect();
        let mut replicas = Vec::new();
        for (id, address) in &peers {
            let data_dir = dir.path().join(format!("replica-{}", id.0));
            let listen = address.parse().expect("socket address");
            let mut options = ReplicaOptions::new(*id, listen, peers.clone(), data_dir);
            options.shard_count = 10;
            options.replica.node.tick = Duration::from_millis(20);
            replicas.push(Replica::start(options).await.expect("replica starts"));
        }
        Controller {
            _dir: dir,
            addresses,
            _replicas: replicas,
        }
    }

    fn ctrler_flag(&self) -> String {
        self.addresses.join(",")
    }
}

/// Runs kvctl with `args` against `ctrler` off the async runtime.
async fn kvctl(ctrler: &str, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kvctl"));
    command
        .args(["--ctrler", ctrler, "--timeout", "20"])
        .args(args);
    tokio::task::spawn_blocking(move || command.output().expect("kvctl runs"))
        .await
        .expect("kvctl task")
}

/// Starts `kvctl --json config watch --from 0` against `ctrler`, its
/// output and errors piped.
fn watch_from_0(ctrler: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_kvctl"))
        .args([
            "--ctrler", ctrler, "--json", "config", "watch", "--from", "0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kvctl watch starts")
}

/// Reads `count` lines of `child`'s piped output on a blocking thread,
/// then drops its end of the pipe (a reader that goes away).
fn read_lines(child: &mut Child, count: usize) -> tokio::task::JoinHandle<Vec<String>> {
    let stdout = child.stdout.take().expect("piped stdout");
    tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .take(count)
            .map(|line| line.expect("a line"))
            .collect()
    })
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Asserts kvctl succeeded and returns its output.
fn ok(output: Output) -> String {
    assert!(
        output.status.success(),
        "kvctl failed: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout(&output)
}

// Goal: the admin commands work end to end and print a table by default
// and JSON with --json. Method: join two groups in one call, move a shard,
// leave a group, query latest and a historical number.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn admin_commands_print_tables_and_json() {
    let controller = Controller::start().await;
    let ctrler = controller.ctrler_flag();
    let joined = ok(kvctl(&ctrler, &["join", "1=a:1,a:2", "2=b:1"]).await);
    assert!(
        joined.starts_with("config 1: 10 shards, 2 groups"),
        "{joined}"
    );
    assert!(joined.contains("a:1,a:2"), "{joined}");
    let json = ok(kvctl(&ctrler, &["--json", "move", "0", "2"]).await);
    let moved: serde_json::Value = serde_json::from_str(json.trim()).expect("JSON");
    assert_eq!(moved["num"], 2);
    assert_eq!(moved["shards"][0], 2);
    assert_eq!(moved["groups"]["1"][1], "a:2");
    let left = ok(kvctl(&ctrler, &["leave", "1"]).await);
    assert!(left.starts_with("config 3: 10 shards, 1 groups"), "{left}");
    let latest = ok(kvctl(&ctrler, &["query", "--json"]).await);
    let latest: serde_json::Value = serde_json::from_str(latest.trim()).expect("JSON");
    assert_eq!(latest["num"], 3);
    assert_eq!(latest["shards"], serde_json::json!(vec![2; 10]));
    let first = ok(kvctl(&ctrler, &["query", "1"]).await);
    assert!(first.starts_with("config 1:"), "{first}");
    let minus_one = ok(kvctl(&ctrler, &["query", "-1", "--json"]).await);
    assert!(minus_one.contains("\"num\":3"), "{minus_one}");
}

// Goal: `join --if-absent` joins only the groups the controller lacks and
// succeeds without a new configuration when none is left, so a bootstrap
// script runs again safely (docker-compose's `init`); a plain join of a
// present group is still refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn join_if_absent_joins_only_missing_groups() {
    let controller = Controller::start().await;
    let ctrler = controller.ctrler_flag();
    let first = ok(kvctl(&ctrler, &["join", "--if-absent", "1=a:1", "2=b:1"]).await);
    assert!(
        first.starts_with("config 1: 10 shards, 2 groups"),
        "{first}"
    );
    let again = ok(kvctl(&ctrler, &["join", "--if-absent", "1=a:1", "2=b:1"]).await);
    assert!(
        again.starts_with("config 1: 10 shards, 2 groups"),
        "{again}"
    );
    let third = ok(kvctl(&ctrler, &["join", "--if-absent", "1=a:1", "3=c:1"]).await);
    assert!(
        third.starts_with("config 2: 10 shards, 3 groups"),
        "{third}"
    );
    let refused = kvctl(&ctrler, &["join", "1=a:1"]).await;
    assert_eq!(refused.status.code(), Some(1));
}

// Goal: refusals and an unreachable controller give clear messages and
// distinct exit codes (1 refused, 2 usage, 3 unavailable).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn errors_have_messages_and_distinct_exit_codes() {
    let controller = Controller::start().await;
    let ctrler = controller.ctrler_flag();
    let refused = kvctl(&ctrler, &["leave", "42"]).await;
    assert_eq!(refused.status.code(), Some(1));
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(message.contains("group 42 is not present"), "{message}");
    let usage = kvctl(&ctrler, &["join", "1"]).await;
    assert_eq!(usage.status.code(), Some(2));
    let nowhere = free_addresses(1).remove(0);
    let mut command = Command::new(env!("CARGO_BIN_EXE_kvctl"));
    command.args(["--ctrler", &nowhere, "--timeout", "1", "query"]);
    let unreachable = tokio::task::spawn_blocking(move || command.output().expect("kvctl"))
        .await
        .expect("kvctl task");
    assert_eq!(unreachable.status.code(), Some(3));
    let help = ok(kvctl(&ctrler, &["--help"]).await);
    for word in ["join", "leave", "move", "query", "config", "Exit codes"] {
        assert!(help.contains(word), "--help lacks {word}: {help}");
    }
}

// Goal: `kvctl config watch` prints each configuration as it commits.
// Method: start a watch from config 0 in JSON, join twice, read three lines.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn config_watch_prints_each_new_configuration() {
    let controller = Controller::start().await;
    let ctrler = controller.ctrler_flag();
    let mut child = watch_from_0(&ctrler);
    let reader = read_lines(&mut child, 3);
    ok(kvctl(&ctrler, &["join", "1=a:1"]).await);
    ok(kvctl(&ctrler, &["join", "2=b:1"]).await);
    let lines = tokio::time::timeout(DEADLINE, reader)
        .await
        .expect("three configurations in time")
        .expect("reader task");
    child.kill().expect("stop the watch");
    child.wait().expect("reaped");
    for (num, line) in lines.iter().enumerate() {
        let config: serde_json::Value = serde_json::from_str(line).expect("JSON line");
        assert_eq!(config["num"], num as u64, "{line}");
    }
}

// Goal: a reader that goes away (`kvctl ... | head`) ends kvctl quietly
// with success, not with a panic. Method: a `config watch` whose reader
// takes one line and closes the pipe, then a join that makes kvctl write
// again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_closed_output_pipe_ends_kvctl_quietly() {
    let controller = Controller::start().await;
    let ctrler = controller.ctrler_flag();
    let mut child = watch_from_0(&ctrler);
    let first = tokio::time::timeout(DEADLINE, read_lines(&mut child, 1))
        .await
        .expect("the first configuration in time")
        .expect("reader task");
    assert!(first[0].contains("\"num\":0"), "{first:?}");
    ok(kvctl(&ctrler, &["join", "1=a:1"]).await);
    let exited = tokio::time::timeout(
        DEADLINE,
        tokio::task::spawn_blocking(move || child.wait_with_output()),
    )
    .await
    .expect("kvctl ends once its reader is gone")
    .expect("waiter task")
    .expect("kvctl reaped");
    let stderr = String::from_utf8_lossy(&exited.stderr);
    assert!(exited.status.success(), "{}: {stderr}", exited.status);
    assert!(stderr.is_empty(), "{stderr}");
}
