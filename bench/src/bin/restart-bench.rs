//! `restart-bench`: how long a replica takes to come back after a crash,
//! against the data it holds (issue 20, "Scale": restart time of a replica
//! against data size).
//!
//! For each size: a fresh cluster (three controller replicas, group 1 of
//! three `shardkv` replicas serving every shard) is filled to the size
//! through the client library. Then:
//! 1. a follower is killed with SIGKILL and started again on its data dir;
//!    the clock runs from the start until it answers `/readyz` (storage
//!    open, a leader known), then until it has applied the group's commit
//!    index of the moment it was killed;
//! 2. every replica of the group is killed and started again; the clock
//!    runs from the starts until a read of the last value written returns
//!    it through the client library (a leader elected, the state served).
//!
//! A sample of values is then read back and compared.
//!
//! Run: `cargo build --release -p shardctrler -p shardkv -p raft-demo -p
//! kv-bench` then `target/release/restart-bench --sizes-mib 128,512,2048`.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use client::{CallOptions, Client};
use kv_bench::cluster::{Cluster, Kind};
use kv_bench::{fill, mib_of, probe};

/// Crash and restart replicas holding each size; time until they serve.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Data loaded before the restarts, in MiB, one fresh cluster each.
    #[arg(long, value_delimiter = ',', default_value = "128,512,2048")]
    sizes_mib: Vec<u64>,
    #[command(flatten)]
    load: fill::Load,
    /// Shard count of the cluster.
    #[arg(long, default_value_t = 64)]
    shards: u32,
    /// The longest a restart may take before the run fails, in seconds.
    #[arg(long, default_value_t = 600)]
    timeout_secs: u64,
    /// First port: controllers on the next three, group 1 100 above,
    /// HTTP 1000 above each.
    #[arg(long, default_value_t = 16000, value_parser = clap::value_parser!(u16).range(1024..=63000))]
    base_port: u16,
    /// Also print one JSON object per size.
    #[arg(long)]
    json: bool,
}

/// What one size measured.
#[derive(Clone, Debug)]
struct Measured {
    mib: u64,
    keys: u64,
    fill_seconds: f64,
    /// Bytes in the restarted follower's data dir before it was killed.
    disk_bytes: u64,
    /// From the follower's start until `/readyz` answers.
    ready_seconds: f64,
    /// From the follower's start until it applied the commit index.
    caught_up_seconds: f64,
    /// The follower's peak RSS from its start until caught up.
    peak_rss: Option<u64>,
    /// From the whole group's start until a read returns the last value.
    group_seconds: f64,
    verified: u64,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread();
    kv_bench::block_on_main("restart-bench", runtime, run(&args))
}

async fn run(args: &Args) -> Result<()> {
    let mut results = Vec::new();
    for &mib in &args.sizes_mib {
        let measured = measure(args, mib).await?;
        print_size(args, &measured);
        results.push(measured);
    }
    print_summary(&results);
    Ok(())
}

/// Returns the bytes of every file under `dir`.
fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_dir() => dir_bytes(&entry.path()),
            Ok(meta) => meta.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Returns the largest sample of metric `name` over group 1's replicas.
fn group_max(cluster: &Cluster, name: &str) -> Option<f64> {
    cluster
        .group(1)
        .metric(name, &[])
        .into_iter()
        .flatten()
        .reduce(f64::max)
}

/// Runs one size on a fresh cluster.
async fn measure(args: &Args, mib: u64) -> Result<Measured> {
    let value_bytes = args.load.value_bytes();
    let keys = args.load.keys_in(mib);
    let timeout = Duration::from_secs(args.timeout_secs);
    let mut cluster =
        Cluster::start_single_group(args.base_port, args.shards, Kind::ShardKv).await?;
    let ctrler = cluster.ctrler_addresses();
    eprintln!(
        "{mib} MiB: loading group 1 with {keys} values of {} KiB",
        args.load.value_kib
    );
    let filling = Instant::now();
    fill::fill(&ctrler, keys, value_bytes, args.load.writers).await?;
    let fill_seconds = filling.elapsed().as_secs_f64();
    eprintln!("{mib} MiB: loaded in {fill_seconds:.1} s; a follower killed and restarted");
    let follower = restart_follower(&mut cluster, timeout).await?;
    eprintln!("{mib} MiB: every replica of group 1 killed and restarted");
    let last = keys - 1;
    let group_seconds = restart_group(
        &mut cluster,
        &fill::key(last),
        &fill::value(last, value_bytes),
        timeout,
    )
    .await?;
    let verified = fill::verify(&ctrler, keys, value_bytes, args.load.verify_keys).await?;
    Ok(Measured {
        mib,
        keys,
        fill_seconds,
        disk_bytes: follower.disk_bytes,
        ready_seconds: follower.ready_seconds,
        caught_up_seconds: follower.caught_up_seconds,
        peak_rss: follower.peak_rss,
        group_seconds,
        verified,
    })
}

/// What restarting one follower measured.
struct FollowerRestart {
    disk_bytes: u64,
    ready_seconds: f64,
    caught_up_seconds: f64,
    peak_rss: Option<u64>,
}

/// Kills a follower of group 1 with SIGKILL and starts it again; times
/// its start until `/readyz` answers and until it applied the group's
/// commit index of the moment it was killed.
async fn restart_follower(cluster: &mut Cluster, timeout: Duration) -> Result<FollowerRestart> {
    let follower = (0..3)
        .find(|&index| {
            let page = probe::metrics(&cluster.group(1).replicas[index].http);
            page.and_then(|page| probe::sample(&page, "raft_is_leader", &[])) == Some(0.0)
        })
        .context("no replica of group 1 says it follows")?;
    let commit = group_max(cluster, "raft_commit_index").context("no commit index")?;
    let name = cluster.group(1).replicas[follower].name.clone();
    let disk_bytes = dir_bytes(&cluster.dir().join(&name));
    cluster.kill_replica(1, follower)?;
    let started = Instant::now();
    cluster.restart_replica(1, follower)?;
    let http = cluster.group(1).replicas[follower].http.clone();
    cluster
        .wait_until(&format!("{name} to answer /readyz"), timeout, |_| {
            probe::ready(&http)
        })
        .await?;
    let ready_seconds = started.elapsed().as_secs_f64();
    cluster
        .wait_until(&format!("{name} to apply index {commit}"), timeout, |_| {
            let page = probe::metrics(&http);
            page.and_then(|page| probe::sample(&page, "raft_applied_index", &[]))
                .is_some_and(|applied| applied >= commit)
        })
        .await?;
    Ok(FollowerRestart {
        disk_bytes,
        ready_seconds,
        caught_up_seconds: started.elapsed().as_secs_f64(),
        peak_rss: probe::peak_rss_bytes(cluster.group(1).replicas[follower].pid()),
    })
}

/// Kills every replica of group 1 with SIGKILL and starts them again;
/// returns the seconds from their start until a read of `key` through the
/// client library returns `value`.
async fn restart_group(
    cluster: &mut Cluster,
    key: &[u8],
    value: &[u8],
    timeout: Duration,
) -> Result<f64> {
    for index in 0..3 {
        cluster.kill_replica(1, index)?;
    }
    let started = Instant::now();
    for index in 0..3 {
        cluster.restart_replica(1, index)?;
    }
    let options = CallOptions {
        deadline: timeout,
        ..CallOptions::default()
    };
    let reader = Client::connect(&cluster.ctrler_addresses(), options)
        .await
        .context("client")?;
    let read = reader
        .get(key)
        .await
        .context("reading the last value after the group restarted")?;
    if read.as_deref() != Some(value) {
        bail!("the last value written did not read back after the group restarted");
    }
    let seconds = started.elapsed().as_secs_f64();
    cluster.check_running()?;
    Ok(seconds)
}

fn print_size(args: &Args, m: &Measured) {
    println!(
        "{} MiB in {} keys (loaded at {:.0} MiB/s; {} MiB on the follower's disk): a killed \
         follower answered /readyz {:.2} s after its start and caught up at {:.2} s (peak RSS \
         {}); the whole group killed served a read {:.2} s after its start; {} values read \
         back intact",
        m.mib,
        m.keys,
        m.mib as f64 / m.fill_seconds,
        m.disk_bytes >> 20,
        m.ready_seconds,
        m.caught_up_seconds,
        mib_of(m.peak_rss),
        m.group_seconds,
        m.verified,
    );
    if args.json {
        let json = serde_json::json!({
            "mib": m.mib,
            "keys": m.keys,
            "fill_seconds": m.fill_seconds,
            "disk_bytes": m.disk_bytes,
            "ready_seconds": m.ready_seconds,
            "caught_up_seconds": m.caught_up_seconds,
            "peak_rss_bytes": m.peak_rss,
            "group_seconds": m.group_seconds,
            "keys_verified": m.verified,
        });
        println!("{json}");
    }
}

/// One line per size: the three restart times side by side.
fn print_summary(results: &[Measured]) {
    println!("summary (seconds from the start of the processes):");
    println!("    data MiB  disk MiB  follower ready  caught up  peak RSS   whole group serves");
    for m in results {
        println!(
            "    {:>8}  {:>8}  {:>14.2}  {:>9.2}  {:>9}  {:>18.2}",
            m.mib,
            m.disk_bytes >> 20,
            m.ready_seconds,
            m.caught_up_seconds,
            mib_of(m.peak_rss),
            m.group_seconds,
        );
    }
}
