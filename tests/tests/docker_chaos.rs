//! Chaos in containers (issue 19): the real image and the compose cluster
//! of `deploy/` (3 controller replicas, 3 groups of 3), concurrent clients
//! getting, putting and appending from the host while replicas are killed
//! and restarted (`docker kill`), a leader is paused (`docker pause`), a
//! replica is cut off the network and reconnected, a whole group restarts,
//! and groups leave, join and move shards. At the end every history is
//! linearizable, every acknowledged append is in its key exactly once, and
//! the cluster converges: every shard serving at its owner in the latest
//! configuration, one leader per group, read off each container's
//! `/metrics`. A real Prometheus (Debian's package, which `.ci/run`
//! installs) scrapes the cluster with `deploy/prometheus.yml` meanwhile
//! and must hold series of every metric the alert rules use.
//!
//! Run alone: `cargo test -p kv-tests --test docker_chaos -- --nocapture`
//! (after `cargo build -p shardctrler -p shardkv -p client`: the image
//! takes the debug binaries the test build made). Without a Docker engine
//! (or docker-compose) it says so and passes. It uses the compose file's
//! fixed container names and addresses: a cluster of `deploy/` already up
//! on this host must be stopped first. Everything it started is torn down
//! at the end, also when it fails.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use client::{CallOptions, CtrlerClient, CtrlerClientOptions};
use kv_tests::deploy::{alert_metric_names, deploy_file};
use kv_tests::harness::{eventually_within, free_addresses};
use kv_tests::history::{Load, Workload};
use raft::observability::http_get;

/// How long the cluster gets to come up, and to converge at the end.
const SETTLE: Duration = Duration::from_secs(120);
/// The deadline of one client call, retries included.
const CALL_DEADLINE: Duration = Duration::from_secs(30);
/// The compose project (prefix of the network and the volumes).
const PROJECT: &str = "kvchaos";
const CTRLERS: [&str; 3] = ["172.28.1.1:7000", "172.28.1.2:7000", "172.28.1.3:7000"];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs a command, returning whether it succeeded and its output.
fn run(program: &str, args: &[&str]) -> (bool, String) {
    match Command::new(program)
        .args(args)
        .current_dir(repo())
        .output()
    {
        Ok(output) => (
            output.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        ),
        Err(error) => (false, error.to_string()),
    }
}

/// Runs a command that must succeed.
fn must(program: &str, args: &[&str]) -> String {
    let (ok, output) = run(program, args);
    assert!(ok, "{program} {args:?} failed: {output}");
    output
}

fn docker(args: &[&str]) -> String {
    must("docker", args)
}

/// The compose cluster; brought down with its volumes when dropped.
struct Compose;

impl Compose {
    fn args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec!["-p", PROJECT, "-f", "deploy/docker-compose.yml"];
        args.extend_from_slice(extra);
        args
    }

    /// Brings the cluster up from nothing (what an earlier, interrupted
    /// run left is removed first).
    fn up() -> Compose {
        let _ = run(
            "docker-compose",
            &Compose::args(&["down", "-v", "--remove-orphans", "-t", "1"]),
        );
        let compose = Compose;
        must("docker-compose", &Compose::args(&["up", "-d"]));
        compose
    }
}

impl Drop for Compose {
    fn drop(&mut self) {
        let (_, output) = run(
            "docker-compose",
            &Compose::args(&["down", "-v", "--remove-orphans", "-t", "5"]),
        );
        eprintln!(
            "docker_chaos: torn down: {}",
            output.lines().last().unwrap_or("")
        );
    }
}

/// Returns the directory of the binaries the test build made.
fn binaries() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's path");
    exe.parent()
        .and_then(Path::parent)
        .expect("target/debug/deps/<test>")
        .to_path_buf()
}

/// Returns the published `/metrics` address of replica `node` of group
/// `group` (0: the controller).
fn metrics_address(group: u64, node: u64) -> String {
    format!("127.0.0.1:{}", 19000 + 10 * group + node)
}

fn container(group: u64, node: u64) -> String {
    match group {
        0 => format!("kv-ctrl{node}"),
        _ => format!("kv-g{group}r{node}"),
    }
}

/// Returns the value of the series `name` whose labels contain `labels`,
/// summed, from one `/metrics` body.
fn metric(body: &str, name: &str, labels: &str) -> f64 {
    body.lines()
        .filter(|line| line.starts_with(name) && line.contains(labels))
        .filter(|line| line[name.len()..].starts_with(['{', ' ']))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Returns the `/metrics` body of every reachable replica of `group`.
fn scrape(group: u64) -> Vec<(u64, String)> {
    (1..=3)
        .filter_map(|node| {
            let body = http_get(
                &metrics_address(group, node),
                "/metrics",
                Duration::from_secs(2),
            )
            .ok()?;
            Some((node, body))
        })
        .collect()
}

/// Returns the replica of `group` that says it leads.
fn leader(group: u64) -> Option<u64> {
    scrape(group)
        .into_iter()
        .find(|(_, body)| metric(body, "raft_is_leader", "") == 1.0)
        .map(|(node, _)| node)
}

/// Returns whether the cluster converged: one leader per group (the
/// controller's included), every replica of every group at the
/// controller's configuration and holding only serving shards.
fn converged() -> Option<()> {
    let ctrler = scrape(0);
    let config = ctrler
        .iter()
        .map(|(_, body)| metric(body, "shardctrler_config_num", ""))
        .fold(0.0, f64::max);
    for group in 0..=3 {
        let bodies = scrape(group);
        if bodies.len() != 3 {
            return None;
        }
        let leaders: f64 = bodies
            .iter()
            .map(|(_, body)| metric(body, "raft_is_leader", ""))
            .sum();
        if leaders != 1.0 {
            return None;
        }
        if group == 0 {
            continue;
        }
        for (_, body) in &bodies {
            let moving = metric(body, "shardkv_shards", "state=\"pulling\"")
                + metric(body, "shardkv_shards", "state=\"sending\"")
                + metric(body, "shardkv_shards", "state=\"cleaning\"");
            if moving != 0.0 || metric(body, "shardkv_config_num", "") != config {
                return None;
            }
        }
    }
    Some(())
}

fn servers(group: u64) -> Vec<String> {
    (1..=3)
        .map(|node| format!("172.28.1{group}.{node}:7000"))
        .collect()
}

/// Builds the image from the test build's binaries, brings the cluster
/// up and waits until the init service joined the groups and every shard
/// serves.
async fn start_cluster() -> Compose {
    let bin_dir = binaries();
    must(
        "deploy/build-images.sh",
        &[bin_dir.to_str().expect("a UTF-8 path")],
    );
    let compose = Compose::up();
    eventually_within("the init service joined the groups", SETTLE, || async {
        let state = docker(&[
            "inspect",
            "-f",
            "{{.State.Status}} {{.State.ExitCode}}",
            "kv-init",
        ]);
        match state.trim() {
            "exited 0" => Some(()),
            exited if exited.starts_with("exited") => panic!("init failed: {exited}"),
            _ => None,
        }
    })
    .await;
    eventually_within("the cluster serves", SETTLE, || async { converged() }).await;
    compose
}

/// Waits until a replica of `group` other than `old` says it leads (a
/// new leader took over from a paused or killed one).
async fn new_leader(group: u64, old: u64) {
    eventually_within(
        &format!("group {group} elects a leader other than {old}"),
        SETTLE,
        || async { leader(group).filter(|node| *node != old) },
    )
    .await;
}

/// Injects every fault in turn, letting the clients progress under each
/// (and, when a leader is taken away, until another takes over).
async fn inject_chaos(load: &Load, admin: &mut CtrlerClient) {
    // A replica killed, then restarted.
    docker(&["kill", "kv-g1r1"]);
    load.wait_more(50).await;
    docker(&["start", "kv-g1r1"]);
    // A leader paused (alive but silent) until another takes over, then
    // resumed: it must step down, not disrupt.
    let paused = leader(2).expect("group 2 has a leader");
    docker(&["pause", &container(2, paused)]);
    new_leader(2, paused).await;
    load.wait_more(50).await;
    docker(&["unpause", &container(2, paused)]);
    // A replica cut off the network, then reconnected.
    let network = format!("{PROJECT}_kv");
    docker(&["network", "disconnect", &network, "kv-g3r2"]);
    load.wait_more(50).await;
    docker(&[
        "network",
        "connect",
        "--ip",
        "172.28.13.2",
        &network,
        "kv-g3r2",
    ]);
    // The controller's leader killed until another takes over, then
    // restarted.
    let ctrler_leader = leader(0).expect("the controller has a leader");
    docker(&["kill", &container(0, ctrler_leader)]);
    new_leader(0, ctrler_leader).await;
    load.wait_more(50).await;
    docker(&["start", &container(0, ctrler_leader)]);
    // A whole group restarted at once.
    docker(&["restart", "-t", "1", "kv-g1r1", "kv-g1r2", "kv-g1r3"]);
    load.wait_more(50).await;
    // Groups leave, join back, and a shard moves, under load.
    admin.leave(vec![3]).await.expect("group 3 leaves");
    load.wait_more(50).await;
    admin
        .join(BTreeMap::from([(3, servers(3))]))
        .await
        .expect("group 3 joins back");
    admin
        .move_shard(0, 2)
        .await
        .expect("shard 0 moves to group 2");
    load.wait_more(50).await;
}

/// A real Prometheus (Debian's `prometheus` package) on loopback with
/// `deploy/prometheus.yml` and its rules, scraping the cluster; killed when
/// dropped.
struct Prometheus {
    child: Child,
    address: String,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts Prometheus, or says why not and returns `None` (not
    /// installed).
    fn start() -> Option<Prometheus> {
        if !run("prometheus", &["--version"]).0 {
            eprintln!(
                "docker_chaos: prometheus is not installed (Debian: apt-get install prometheus): not run"
            );
            return None;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let address = free_addresses(1).remove(0);
        let child = Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                deploy_file("prometheus.yml").display()
            ))
            .arg(format!("--storage.tsdb.path={}", dir.path().display()))
            .arg(format!("--web.listen-address={address}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus starts");
        Some(Prometheus {
            child,
            address,
            _dir: dir,
        })
    }

    /// Returns Prometheus's answer to the instant query `query`.
    fn query(&self, query: &str) -> String {
        let encoded: String = query
            .bytes()
            .map(|byte| match byte {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' => (byte as char).to_string(),
                other => format!("%{other:02X}"),
            })
            .collect();
        let path = format!("/api/v1/query?query={encoded}");
        http_get(&self.address, &path, Duration::from_secs(5)).unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Checks that Prometheus scrapes all 12 containers and has series for
/// every metric the alert rules use.
async fn prometheus_sees_every_rule_metric(prometheus: &Prometheus) {
    eventually_within("Prometheus scrapes all 12 containers", SETTLE, || async {
        prometheus
            .query("count(up == 1)")
            .contains("\"12\"]")
            .then_some(())
    })
    .await;
    for name in alert_metric_names() {
        let query = format!("count({{__name__=~\"{name}|{name}_bucket\"}})");
        eventually_within(&format!("Prometheus has {name}"), SETTLE, || async {
            let answer = prometheus.query(&query);
            (answer.contains("\"success\"") && !answer.contains("\"result\":[]")).then_some(())
        })
        .await;
    }
}

// Goal: what a user relies on survives the faults containers meet in
// production. Method: see the module documentation.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_compose_cluster_survives_chaos() {
    let engine = run("docker", &["info"]).0 && run("docker-compose", &["version"]).0;
    if !engine {
        eprintln!("docker_chaos: no Docker engine or no docker-compose here: skipped");
        return;
    }
    let _compose = start_cluster().await;
    let prometheus = Prometheus::start();
    let options = CallOptions {
        deadline: CALL_DEADLINE,
        ..CallOptions::default()
    };
    let client = client::Client::connect(&CTRLERS, options)
        .await
        .expect("connects");
    let load = Load::start(client, 4, Workload::lab());
    load.wait_more(20).await;
    let admin_options = CtrlerClientOptions {
        deadline: CALL_DEADLINE,
        ..CtrlerClientOptions::default()
    };
    let mut admin = CtrlerClient::new(&CTRLERS, admin_options).expect("admin client");
    let chaos = Instant::now();
    inject_chaos(&load, &mut admin).await;
    let chaos = chaos.elapsed();
    let checked = load.finish_and_check(400).await;
    let healed = Instant::now();
    eventually_within("the cluster converges", SETTLE, || async { converged() }).await;
    eprintln!(
        "docker_chaos: {checked:?}; faults: 2 replicas killed (one a controller leader), \
         1 leader paused, 1 replica cut off, 1 group restarted, 3 configuration changes, \
         over {:.1} s; converged {:.1} s after the clients stopped",
        chaos.as_secs_f64(),
        healed.elapsed().as_secs_f64()
    );
    if let Some(prometheus) = &prometheus {
        prometheus_sees_every_rule_metric(prometheus).await;
    }
}
