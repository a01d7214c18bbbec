//! `migration-bench`: moves a shard set of a given size between two groups
//! and reports the time, the rate, and the peak RSS of every replica of
//! both groups (issue 17: memory flat in shard size, at least 100 MiB/s on
//! loopback).
//!
//! For each size: a fresh cluster (three controller replicas, groups 1 and
//! 2 of three `shardkv` replicas each); group 1 joins alone and is filled
//! to the size through the client library (values of incompressible
//! bytes, several concurrent writers); the peak RSS of every replica is
//! reset; then group 2 joins and group 1 leaves at once, so every shard
//! moves to group 2 (half by the join's configuration, the rest by the
//! leave's). The clock starts at the join and stops when every shard is
//! served by every replica of group 2 (installed), then again when group 1
//! holds nothing (its copies deleted). A sample of keys is then read back
//! and compared.
//!
//! Run: `cargo build --release -p shardctrler -p shardkv -p raft-demo -p
//! kv-bench` then `target/release/migration-bench --sizes-mib 256,1024`.

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use clap::Parser;
use kv_bench::cluster::{Cluster, Kind};
use kv_bench::{fill, mib_of, probe};

/// Move a shard set of each size between two groups; time, rate, peak RSS.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Sizes of the shard set moved, in MiB, one fresh cluster each.
    #[arg(long, value_delimiter = ',', default_value = "256,1024")]
    sizes_mib: Vec<u64>,
    #[command(flatten)]
    load: fill::Load,
    /// Shard count of the cluster.
    #[arg(long, default_value_t = 64)]
    shards: u32,
    /// The longest the move may take before the run fails, in seconds.
    #[arg(long, default_value_t = 1800)]
    timeout_secs: u64,
    /// First port: controllers on the next three, groups 100 and 200
    /// above, HTTP 1000 above each.
    #[arg(long, default_value_t = 18000, value_parser = clap::value_parser!(u16).range(1024..=63000))]
    base_port: u16,
    /// Keep each cluster's data dirs and logs (printed) instead of
    /// removing them: RocksDB's `LOG` files hold its compaction figures.
    #[arg(long)]
    keep_data: bool,
    /// Also print one JSON object per size.
    #[arg(long)]
    json: bool,
}

/// What one size measured.
#[derive(Clone, Debug)]
struct Measured {
    mib: u64,
    fill_seconds: f64,
    /// From the join until every replica of group 2 serves every shard.
    installed_seconds: f64,
    /// From the join until group 1 holds no shard on any replica.
    deleted_seconds: f64,
    /// `shardkv_migration_bytes_total` at group 2 (max over replicas).
    moved_bytes: f64,
    /// Peak RSS during the fill, per replica of group 1.
    fill_rss: Vec<Option<u64>>,
    /// Peak RSS during the move, per replica of group 1 then group 2.
    move_rss: [Vec<Option<u64>>; 2],
    verified: u64,
    /// CPU seconds used during the move by group 1's then group 2's
    /// replicas, summed per group.
    move_cpu: [f64; 2],
}

impl Measured {
    fn installed_mib_per_second(&self) -> f64 {
        self.mib as f64 / self.installed_seconds
    }

    fn peak(rss: &[Option<u64>]) -> Option<u64> {
        rss.iter().flatten().copied().max()
    }
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread();
    kv_bench::block_on_main("migration-bench", runtime, run(&args))
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

/// Starts a fresh cluster with group 1 joined alone and serving every
/// shard, and group 2 up, not joined.
async fn start(args: &Args) -> Result<Cluster> {
    let mut cluster =
        Cluster::start_single_group(args.base_port, args.shards, Kind::ShardKv).await?;
    cluster.start_group(2, Kind::ShardKv)?;
    cluster.wait_group_ready(2).await?;
    Ok(cluster)
}

/// Returns the peak RSS of every replica of group `gid`.
fn peaks(cluster: &Cluster, gid: u64) -> Vec<Option<u64>> {
    cluster
        .group(gid)
        .pids()
        .into_iter()
        .map(probe::peak_rss_bytes)
        .collect()
}

/// Resets the peak RSS of every replica of both groups, so what is read
/// next covers the move only.
fn reset_peaks(cluster: &Cluster) -> Result<()> {
    for gid in [1, 2] {
        for pid in cluster.group(gid).pids() {
            ensure!(
                probe::reset_peak_rss(pid),
                "cannot reset the peak RSS of process {pid} (/proc/PID/clear_refs)"
            );
        }
    }
    Ok(())
}

/// Runs one size on a fresh cluster.
async fn measure(args: &Args, mib: u64) -> Result<Measured> {
    let value_bytes = args.load.value_bytes();
    let count = args.load.keys_in(mib);
    let mut cluster = start(args).await?;
    let ctrler = cluster.ctrler_addresses();
    if args.keep_data {
        cluster.keep_dir();
        eprintln!("{mib} MiB: data kept under {}", cluster.dir().display());
    }
    eprintln!(
        "{mib} MiB: filling group 1 with {count} values of {} KiB",
        args.load.value_kib
    );
    let filling = Instant::now();
    fill::fill(&ctrler, count, value_bytes, args.load.writers).await?;
    let fill_seconds = filling.elapsed().as_secs_f64();
    let fill_rss = peaks(&cluster, 1);
    reset_peaks(&cluster)?;
    eprintln!("{mib} MiB: filled in {fill_seconds:.1} s; group 2 joins and group 1 leaves");
    let shards = args.shards;
    let timeout = Duration::from_secs(args.timeout_secs);
    // Each poll scrapes /metrics of six replicas: not too often.
    cluster.set_poll_interval(Duration::from_millis(200));
    let cpu_before = [cpu(&cluster, 1), cpu(&cluster, 2)];
    let started = Instant::now();
    cluster.join(2).await?;
    cluster.leave(1).await?;
    let mut last_report = Instant::now();
    cluster
        .wait_until("group 2 to serve every shard", timeout, |c| {
            if last_report.elapsed() >= Duration::from_secs(5) {
                last_report = Instant::now();
                report_progress(c, started);
            }
            installed(c, shards)
        })
        .await?;
    let installed_seconds = started.elapsed().as_secs_f64();
    cluster
        .wait_until("group 1 to delete its copies", timeout, |c| {
            deleted(c, shards)
        })
        .await?;
    let deleted_seconds = started.elapsed().as_secs_f64();
    let move_rss = [peaks(&cluster, 1), peaks(&cluster, 2)];
    let move_cpu = [
        cpu(&cluster, 1) - cpu_before[0],
        cpu(&cluster, 2) - cpu_before[1],
    ];
    let moved_bytes = installed_bytes(&cluster);
    let verified = fill::verify(&ctrler, count, value_bytes, args.load.verify_keys).await?;
    Ok(Measured {
        mib,
        fill_seconds,
        installed_seconds,
        deleted_seconds,
        moved_bytes,
        fill_rss,
        move_rss,
        verified,
        move_cpu,
    })
}

/// Returns the CPU seconds the replicas of group `gid` used so far.
fn cpu(cluster: &Cluster, gid: u64) -> f64 {
    cluster
        .group(gid)
        .pids()
        .into_iter()
        .filter_map(probe::cpu_seconds)
        .sum()
}

/// Returns the bytes group 2 installed by moves so far
/// (`shardkv_migration_bytes_total`, the most of any replica).
fn installed_bytes(cluster: &Cluster) -> f64 {
    cluster
        .group(2)
        .metric("shardkv_migration_bytes_total", &[])
        .into_iter()
        .flatten()
        .fold(0.0, f64::max)
}

/// Prints, on stderr, how far the move is: shards served at group 2 and
/// held by group 1 (per replica), and the bytes group 2 installed.
fn report_progress(cluster: &Cluster, started: Instant) {
    let moved = installed_bytes(cluster);
    let show = |held: Vec<Option<f64>>| {
        held.iter()
            .map(|h| h.map_or("?".into(), |h| format!("{h:.0}")))
            .collect::<Vec<_>>()
            .join("/")
    };
    eprintln!(
        "    {:>5.1} s: group 2 serves {} shards, group 1 holds {}; {:.0} MiB installed",
        started.elapsed().as_secs_f64(),
        show(held(cluster, 2, &["serving", "cleaning"])),
        show(held(
            cluster,
            1,
            &["serving", "pulling", "sending", "cleaning"]
        )),
        moved / f64::from(1 << 20),
    );
}

/// Returns the shards each replica of group `gid` holds in each of
/// `states` (summed), `None` where a replica did not answer.
fn held(cluster: &Cluster, gid: u64, states: &[&str]) -> Vec<Option<f64>> {
    cluster
        .group(gid)
        .pages()
        .into_iter()
        .map(|page| {
            let page = page?;
            Some(
                states
                    .iter()
                    .filter_map(|state| probe::sample(&page, "shardkv_shards", &[("state", state)]))
                    .sum(),
            )
        })
        .collect()
}

/// Every replica of group 2 serves every shard (`serving` or `cleaning`:
/// the data has arrived).
fn installed(cluster: &Cluster, shards: u32) -> bool {
    held(cluster, 2, &["serving", "cleaning"])
        .iter()
        .all(|held| *held == Some(f64::from(shards)))
}

/// Group 2 serves every shard in state `serving` (the old copies are
/// confirmed deleted) and group 1 holds no shard in any state.
fn deleted(cluster: &Cluster, shards: u32) -> bool {
    held(cluster, 2, &["serving"])
        .iter()
        .all(|held| *held == Some(f64::from(shards)))
        && held(cluster, 1, &["serving", "pulling", "sending", "cleaning"])
            .iter()
            .all(|held| *held == Some(0.0))
}

/// Formats each replica's peak RSS.
fn each(rss: &[Option<u64>]) -> String {
    rss.iter()
        .map(|b| b.map_or("?".into(), |b| (b >> 20).to_string()))
        .collect::<Vec<_>>()
        .join("/")
}

fn print_size(args: &Args, m: &Measured) {
    println!(
        "{} MiB moved from group 1 to group 2: installed in {:.1} s = {:.0} MiB/s, old copies \
         deleted at {:.1} s; {:.0} MiB installed by moves (shardkv_migration_bytes_total); \
         {} keys read back intact; CPU during the move: group 1 {:.1} s, group 2 {:.1} s",
        m.mib,
        m.installed_seconds,
        m.installed_mib_per_second(),
        m.deleted_seconds,
        m.moved_bytes / f64::from(1 << 20),
        m.verified,
        m.move_cpu[0],
        m.move_cpu[1],
    );
    println!(
        "    peak RSS during the move: group 1 (source) {} (replicas {} MiB), group 2 \
         (destination) {} (replicas {} MiB); during the fill group 1 reached {} (filled at \
         {:.0} MiB/s)",
        mib_of(Measured::peak(&m.move_rss[0])),
        each(&m.move_rss[0]),
        mib_of(Measured::peak(&m.move_rss[1])),
        each(&m.move_rss[1]),
        mib_of(Measured::peak(&m.fill_rss)),
        m.mib as f64 / m.fill_seconds,
    );
    if args.json {
        let json = serde_json::json!({
            "mib": m.mib,
            "fill_seconds": m.fill_seconds,
            "installed_seconds": m.installed_seconds,
            "deleted_seconds": m.deleted_seconds,
            "mib_per_second": m.installed_mib_per_second(),
            "moved_bytes": m.moved_bytes,
            "peak_rss_bytes_fill_group_1": m.fill_rss,
            "peak_rss_bytes_move_group_1": m.move_rss[0],
            "peak_rss_bytes_move_group_2": m.move_rss[1],
            "keys_verified": m.verified,
            "cpu_seconds_move_group_1": m.move_cpu[0],
            "cpu_seconds_move_group_2": m.move_cpu[1],
        });
        println!("{json}");
    }
}

/// Compares the smallest and the largest size: rate, and peak RSS of each
/// group during the move.
fn print_summary(results: &[Measured]) {
    let (Some(small), Some(large)) = (
        results.iter().min_by_key(|m| m.mib),
        results.iter().max_by_key(|m| m.mib),
    ) else {
        return;
    };
    println!("summary:");
    for m in results {
        println!(
            "    {:>5} MiB: {:>6.1} s  {:>5.0} MiB/s  peak RSS group 1 {:>9}  group 2 {:>9}",
            m.mib,
            m.installed_seconds,
            m.installed_mib_per_second(),
            mib_of(Measured::peak(&m.move_rss[0])),
            mib_of(Measured::peak(&m.move_rss[1])),
        );
    }
    if small.mib == large.mib {
        return;
    }
    let ratio = |gid: usize| match (
        Measured::peak(&small.move_rss[gid]),
        Measured::peak(&large.move_rss[gid]),
    ) {
        (Some(a), Some(b)) if a > 0 => format!("{:.2}x", b as f64 / a as f64),
        _ => "?".into(),
    };
    println!(
        "    {} MiB against {} MiB ({:.0}x the data): peak RSS group 1 {}, group 2 {}; \
         slowest rate {:.0} MiB/s (target 100)",
        large.mib,
        small.mib,
        large.mib as f64 / small.mib as f64,
        ratio(0),
        ratio(1),
        results
            .iter()
            .map(Measured::installed_mib_per_second)
            .fold(f64::INFINITY, f64::min),
    );
}
