//! Benchmark of a real 3-node Raft group: starts three `raft-node`
//! processes on loopback (RocksDB, fsync on), drives the leader over gRPC
//! with 1 and then 64 concurrent proposers of 256-byte values for a fixed
//! time, and prints throughput, p50/p99/p999 latency (hdrhistogram),
//! fsyncs per committed entry (group commit at work), and the disk's own
//! fsync rate measured in the same run as the physical reference, and the
//! CPU time each process spent per write. With `--rpc-floor` it then drives
//! a server that answers without doing anything (`floor.rs`), the same
//! way: what the RPC alone costs on this machine.
//!
//! Run: `cargo build --release -p raft-demo --bin raft-node --bin raft-bench`
//! then `target/release/raft-bench --seconds 10` (3 runs per level, medians).

mod catch_up;
mod cpu;
mod floor;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use hdrhistogram::Histogram;
use proto::kv::v1::shard_kv_client::ShardKvClient;
use proto::kv::v1::{PutRequest, Status as KvStatus};
use tokio::sync::Mutex;
use tonic::transport::Channel;

/// Benchmark a 3-node Raft group on loopback.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Seconds each load level runs.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Concurrent proposers, one run per value.
    #[arg(long, value_delimiter = ',', default_value = "1,64")]
    proposers: Vec<usize>,
    /// Value size in bytes.
    #[arg(long, default_value_t = 256)]
    value_bytes: usize,
    /// Runs of each load level; the summary line gives their medians.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// First port used: the nodes' gRPC on it and the next two, their HTTP
    /// ten above, the RPC floor's server twenty above.
    #[arg(long, default_value_t = 17100, value_parser = clap::value_parser!(u16).range(1..=65500))]
    base_port: u16,
    /// After the group, measure the RPC floor: the same load against a
    /// server process that answers every write without doing anything.
    #[arg(long)]
    rpc_floor: bool,
    /// Instead of the load levels, measure a follower's catch-up by
    /// snapshot on states of these sizes, in MiB (e.g. `256,1024`).
    #[arg(long, value_delimiter = ',')]
    catch_up_mib: Vec<u64>,
    /// Internal: serve the RPC floor's no-op server on this address.
    #[arg(long, hide = true)]
    serve_noop: Option<std::net::SocketAddr>,
}

/// Child processes, killed when dropped.
struct Group {
    children: Vec<Child>,
    /// How each child was started, to start it again.
    commands: Vec<Vec<std::ffi::OsString>>,
    grpc: Vec<String>,
    http: Vec<String>,
    /// The nodes' data directories, removed when dropped.
    dir: Option<tempfile::TempDir>,
}

impl Drop for Group {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts three `raft-node` processes on consecutive ports from
/// `base_port`, each with `extra` flags too.
fn start_group(base_port: u16, extra: &[&str]) -> Group {
    let dir = tempfile::tempdir().expect("temp dir");
    let grpc: Vec<String> = (0..3)
        .map(|i| format!("127.0.0.1:{}", base_port + i))
        .collect();
    let http: Vec<String> = (0..3)
        .map(|i| format!("127.0.0.1:{}", base_port + 10 + i))
        .collect();
    let peers: Vec<String> = grpc
        .iter()
        .enumerate()
        .map(|(i, a)| format!("{}={a}", i + 1))
        .collect();
    let commands: Vec<Vec<std::ffi::OsString>> = (0..3)
        .map(|i| {
            let mut args: Vec<std::ffi::OsString> = vec![
                "--id".into(),
                (i + 1).to_string().into(),
                "--listen".into(),
                grpc[i].clone().into(),
                "--http".into(),
                http[i].clone().into(),
                "--peers".into(),
                peers.join(",").into(),
                "--tick-ms".into(),
                "50".into(),
                "--data-dir".into(),
                dir.path().join(format!("node-{}", i + 1)).into(),
            ];
            args.extend(extra.iter().map(Into::into));
            args
        })
        .collect();
    let children = commands.iter().map(|args| spawn_node(args)).collect();
    Group {
        children,
        commands,
        grpc,
        http,
        dir: Some(dir),
    }
}

/// Starts one `raft-node` (next to this binary) with `args`.
fn spawn_node(args: &[std::ffi::OsString]) -> Child {
    let node_binary = std::env::current_exe()
        .expect("own path")
        .with_file_name("raft-node");
    Command::new(&node_binary)
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|error| panic!("cannot start {}: {error}", node_binary.display()))
}

impl Group {
    /// Kills node `position` (SIGKILL) and waits for it.
    fn kill(&mut self, position: usize) {
        let _ = self.children[position].kill();
        let _ = self.children[position].wait();
    }

    /// Starts node `position` again, on its data dir.
    fn restart(&mut self, position: usize) {
        self.children[position] = spawn_node(&self.commands[position]);
    }
}

/// Returns the sum of `raft_fsync_duration_seconds_count` over the nodes.
fn fsync_count(http: &[String]) -> u64 {
    http.iter()
        .map(|address| {
            raft::observability::http_get(address, "/metrics", Duration::from_secs(10))
                .expect("metrics endpoint")
                .lines()
                .filter(|line| line.starts_with("raft_fsync_duration_seconds_count"))
                .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
                .sum::<f64>() as u64
        })
        .sum()
}

/// Finds the leader by writing until one answers OK; returns a client of
/// it and its position in `group`.
async fn find_leader(group: &Group) -> (ShardKvClient<Channel>, usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        for (position, address) in group.grpc.iter().enumerate() {
            if let Ok(mut client) = ShardKvClient::connect(format!("http://{address}")).await {
                let request = PutRequest {
                    key: Bytes::from_static(b"probe"),
                    value: Bytes::new(),
                    client_id: 0,
                    seq: 0,
                };
                if let Ok(reply) = client.put(request).await
                    && reply.get_ref().status == KvStatus::Ok as i32
                {
                    return (client, position);
                }
            }
        }
        assert!(Instant::now() < deadline, "no leader within 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Measures the disk's synced-write rate: 4 KiB writes, each fsynced.
fn disk_fsyncs_per_second(dir: &std::path::Path) -> f64 {
    let path: PathBuf = dir.join("fsync-probe");
    let mut file = std::fs::File::create(&path).expect("probe file");
    let block = [0u8; 4096];
    let started = Instant::now();
    let mut count = 0u64;
    while started.elapsed() < Duration::from_secs(2) {
        file.write_all(&block).expect("write");
        file.sync_data().expect("fsync");
        count += 1;
    }
    count as f64 / started.elapsed().as_secs_f64()
}

async fn run_level(
    client: &ShardKvClient<Channel>,
    proposers: usize,
    seconds: u64,
    value: Bytes,
) -> (u64, Histogram<u64>) {
    let histogram = Arc::new(Mutex::new(Histogram::<u64>::new(3).expect("histogram")));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..proposers)
        .map(|proposer| {
            let (mut client, histogram, value) = (client.clone(), histogram.clone(), value.clone());
            tokio::spawn(async move {
                let mut local = Histogram::<u64>::new(3).expect("histogram");
                let mut sequence = 0u64;
                while Instant::now() < deadline {
                    sequence += 1;
                    let key = Bytes::from(format!("p{proposer}-{}", sequence % 1000));
                    let started = Instant::now();
                    let reply = client
                        .put(PutRequest {
                            key,
                            value: value.clone(),
                            client_id: 0,
                            seq: 0,
                        })
                        .await;
                    let ok = reply.is_ok_and(|r| r.get_ref().status == KvStatus::Ok as i32);
                    assert!(ok, "write failed during the benchmark");
                    local
                        .record(started.elapsed().as_micros() as u64)
                        .expect("in range");
                }
                histogram.lock().await.add(&local).expect("same bounds");
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("proposer");
    }
    let histogram = Arc::try_unwrap(histogram).expect("tasks done").into_inner();
    (histogram.len(), histogram)
}

fn main() {
    let args = Args::parse();
    if let Some(listen) = args.serve_noop {
        floor::serve_noop(listen);
    }
    // One thread drives every proposer: the load generator shares the two
    // cores with the servers, and a single-threaded runtime spends its CPU
    // on requests instead of on waking workers across threads.
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(run(args));
}

/// A measured server process: a label for the CPU figures and its pid.
type Process = (&'static str, u32);

async fn run(args: Args) {
    // A subscriber also spares every span of the gRPC stack its fallback
    // to the `log` crate, a cost the nodes do not pay either.
    raft::observability::init_logging();
    if !args.catch_up_mib.is_empty() {
        for &mib in &args.catch_up_mib {
            catch_up::run(args.base_port, mib).await;
        }
        return;
    }
    let value = Bytes::from(vec![b'x'; args.value_bytes]);
    let group_medians = {
        let group = start_group(args.base_port, &[]);
        let (client, leader) = find_leader(&group).await;
        let mut servers: Vec<Process> = vec![("leader", group.children[leader].id())];
        servers.extend(
            (0..group.children.len())
                .filter(|&position| position != leader)
                .map(|position| ("follower", group.children[position].id())),
        );
        println!("3-node group (fsync on), {} B values", args.value_bytes);
        measure(&args, &client, &servers, Some(&group), &value).await
    };
    if args.rpc_floor {
        let (floor, client) = start_floor(args.base_port + 20).await;
        println!("RPC floor: a server that answers every write without doing anything");
        let servers: Vec<Process> = vec![("server", floor.children[0].id())];
        let floor_medians = measure(&args, &client, &servers, None, &value).await;
        for (proposers, (group, floor)) in args
            .proposers
            .iter()
            .zip(group_medians.iter().zip(&floor_medians))
        {
            println!(
                "proposers {proposers:>3}: the group reaches {:.2} of the RPC floor's writes/s",
                group.writes_per_second / floor.writes_per_second
            );
        }
    }
}

/// Runs every load level `args.runs` times against `client`, prints each
/// run and the medians, and returns the medians in the order of
/// `args.proposers`; `group`, when measuring one, gives the fsync figures.
async fn measure(
    args: &Args,
    client: &ShardKvClient<Channel>,
    servers: &[Process],
    group: Option<&Group>,
    value: &Bytes,
) -> Vec<RunResult> {
    let mut pids = vec![std::process::id()];
    pids.extend(servers.iter().map(|&(_, pid)| pid));
    let mut labels = vec!["load generator"];
    labels.extend(servers.iter().map(|&(label, _)| label));
    let mut medians = Vec::new();
    for &proposers in &args.proposers {
        let mut runs = Vec::new();
        for run in 1..=args.runs.max(1) {
            // The physical reference, measured next to each run.
            let disk_rate = group
                .and_then(|group| group.dir.as_ref())
                .map(|dir| disk_fsyncs_per_second(dir.path()));
            let fsyncs_before = group.map(|group| fsync_count(&group.http));
            let cpu = cpu::CpuSample::take(&pids);
            let started = Instant::now();
            let (writes, histogram) =
                run_level(client, proposers, args.seconds, value.clone()).await;
            let elapsed = started.elapsed().as_secs_f64();
            let cpu_us_per_write = cpu.micros_per_operation(&pids, writes);
            let fsyncs = group
                .zip(fsyncs_before)
                .map(|(group, before)| fsync_count(&group.http) - before);
            let result = RunResult {
                writes_per_second: writes as f64 / elapsed,
                p50: histogram.value_at_quantile(0.50),
                p99: histogram.value_at_quantile(0.99),
                p999: histogram.value_at_quantile(0.999),
                fsyncs_per_write: fsyncs.map(|count| count as f64 / writes.max(1) as f64),
                disk_fsync_us: disk_rate.map(|rate| 1e6 / rate),
                cpu_us_per_write,
            };
            println!(
                "proposers {proposers:>3} run {run}: {}",
                result.show(&labels)
            );
            runs.push(result);
        }
        let median = RunResult::median(&runs);
        println!("proposers {proposers:>3} median: {}", median.show(&labels));
        medians.push(median);
    }
    medians
}

/// Starts the RPC floor's no-op server (this binary, `--serve-noop`) on
/// `port` and returns it with a connected client.
async fn start_floor(port: u16) -> (Group, ShardKvClient<Channel>) {
    let address = format!("127.0.0.1:{port}");
    let child = Command::new(std::env::current_exe().expect("own path"))
        .args(["--serve-noop", &address])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("cannot start the no-op server");
    let floor = Group {
        children: vec![child],
        commands: Vec::new(),
        grpc: vec![address.clone()],
        http: Vec::new(),
        dir: None,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(client) = ShardKvClient::connect(format!("http://{address}")).await {
            return (floor, client);
        }
        assert!(Instant::now() < deadline, "no-op server not up within 30 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The figures of one run at one load level.
#[derive(Clone)]
struct RunResult {
    writes_per_second: f64,
    p50: u64,
    p99: u64,
    p999: u64,
    /// Synced writes on all three nodes per committed write (a group only).
    fsyncs_per_write: Option<f64>,
    /// One 4 KiB write + fdatasync on the same disk, measured before the
    /// run: the latency floor of a write that needs one fsync (a group
    /// only).
    disk_fsync_us: Option<f64>,
    /// CPU time per write of the load generator, then of each server, in
    /// microseconds (`None` where `/proc` could not tell).
    cpu_us_per_write: Vec<Option<f64>>,
}

impl RunResult {
    /// Returns the median of each figure over `runs` (not empty, all of
    /// the same processes).
    fn median(runs: &[RunResult]) -> RunResult {
        fn mid<T: Copy + PartialOrd>(mut values: Vec<T>) -> T {
            values.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
            values[values.len() / 2]
        }
        RunResult {
            writes_per_second: mid(runs.iter().map(|r| r.writes_per_second).collect()),
            p50: mid(runs.iter().map(|r| r.p50).collect()),
            p99: mid(runs.iter().map(|r| r.p99).collect()),
            p999: mid(runs.iter().map(|r| r.p999).collect()),
            fsyncs_per_write: mid(runs.iter().map(|r| r.fsyncs_per_write).collect()),
            disk_fsync_us: mid(runs.iter().map(|r| r.disk_fsync_us).collect()),
            cpu_us_per_write: (0..runs[0].cpu_us_per_write.len())
                .map(|process| mid(runs.iter().map(|r| r.cpu_us_per_write[process]).collect()))
                .collect(),
        }
    }

    /// Formats the result, naming the processes of the CPU figures.
    fn show<'a>(&'a self, labels: &'a [&'static str]) -> impl std::fmt::Display + 'a {
        Shown {
            result: self,
            labels,
        }
    }
}

/// A [`RunResult`] with the labels of its CPU figures.
struct Shown<'a> {
    result: &'a RunResult,
    labels: &'a [&'static str],
}

impl std::fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let result = self.result;
        write!(
            f,
            "{:>8.0} writes/s  p50 {:>6} us  p99 {:>6} us  p999 {:>6} us",
            result.writes_per_second, result.p50, result.p99, result.p999,
        )?;
        if let (Some(fsyncs), Some(disk)) = (result.fsyncs_per_write, result.disk_fsync_us) {
            write!(
                f,
                "  fsyncs per write {fsyncs:.3} (3 nodes)  disk fsync {disk:.0} us  \
                 p50 - fsync {:.0} us",
                result.p50 as f64 - disk,
            )?;
        }
        write!(f, "\n    CPU per write:")?;
        let mut total = 0.0;
        for (label, micros) in self.labels.iter().zip(&result.cpu_us_per_write) {
            match micros {
                Some(micros) => {
                    total += micros;
                    write!(f, " {label} {micros:.1} us,")?;
                }
                None => write!(f, " {label} unknown,")?,
            }
        }
        write!(f, " total {total:.1} us")
    }
}
