//! `data-path-bench`: what the sharded data path costs over bare Raft
//! (issue 17: with one group holding every shard, `kvbench` reaches at
//! least 90 % of the put and get throughput it reaches against a
//! `raft-node` group, at no higher p99).
//!
//! Each run starts two fresh clusters in turn, in alternating order (A B,
//! B A, A B, ...): (A) three controller replicas and one `shardkv` group
//! of three joined, so it holds every shard; (B) three controller replicas
//! and one `raft-node` group of three joined as a group (the same public
//! API over a bare Raft register map: no shard checks, no sessions, no
//! at-most-once). Against each, the `kvbench` binary runs every workload
//! at every client count and its JSON is kept; the table gives the medians
//! of the runs, A's throughput as a fraction of B's, whether A's median
//! p99 is no higher than B's, and in how many runs (A and B of the same
//! run, measured one after the other) A's p99 was no higher than B's: a verdict
//! that holds in about half of the runs is the machine's noise, not a
//! difference between the two.
//!
//! Run: `cargo build --release -p shardctrler -p shardkv -p client -p
//! raft-demo -p kv-bench` then `target/release/data-path-bench --runs 3`.

use anyhow::Result;
use clap::Parser;
use kv_bench::cluster::{Cluster, Kind};
use kv_bench::kvbench_run::{Sample, kvbench_binary, run_kvbench};
use kv_bench::{median, pairs_no_higher};

/// kvbench against a shardkv group and a raft-node group, alternating.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Runs of each side; the table gives their medians.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..))]
    runs: u64,
    /// Seconds each kvbench measurement runs.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Client counts, one kvbench measurement each.
    #[arg(long, value_delimiter = ',', default_value = "1,64")]
    clients: Vec<u64>,
    /// Workloads (kvbench `--workload`), one measurement each.
    #[arg(long, value_delimiter = ',', default_value = "put,get")]
    workloads: Vec<String>,
    /// Distinct keys (kvbench `--keys`; get runs fill them first).
    #[arg(long, default_value_t = 1000)]
    keys: u64,
    /// Value size in bytes (kvbench `--value-bytes`).
    #[arg(long, default_value_t = 256)]
    value_bytes: u64,
    /// Shard count of the clusters.
    #[arg(long, default_value_t = 64)]
    shards: u32,
    /// First port: controllers on the next three, the group 100 above,
    /// HTTP 1000 above each; successive clusters move up by 2000 in turn
    /// (three port sets), so a new cluster never waits on the last one's
    /// sockets.
    #[arg(long, default_value_t = 20000, value_parser = clap::value_parser!(u16).range(1024..=58000))]
    base_port: u16,
}

/// The two sides measured.
const SIDES: [Kind; 2] = [Kind::ShardKv, Kind::RaftNode];

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_current_thread();
    kv_bench::block_on_main("data-path-bench", runtime, run(&args))
}

/// Returns the side's name in the output.
fn side_name(kind: Kind) -> &'static str {
    match kind {
        Kind::ShardKv => "shardkv",
        Kind::RaftNode => "raft-node",
    }
}

async fn run(args: &Args) -> Result<()> {
    let kvbench = kvbench_binary()?;
    // samples[side][(workload, clients)] = one Sample per run.
    let cells: Vec<(String, u64)> = args
        .workloads
        .iter()
        .flat_map(|w| args.clients.iter().map(move |&c| (w.clone(), c)))
        .collect();
    let mut samples: [Vec<Vec<Sample>>; 2] =
        [vec![Vec::new(); cells.len()], vec![Vec::new(); cells.len()]];
    let mut cluster_number = 0u16;
    for run in 1..=args.runs {
        let order: [usize; 2] = if run % 2 == 1 { [0, 1] } else { [1, 0] };
        for side in order {
            let kind = SIDES[side];
            let base_port = args.base_port + 2000 * (cluster_number % 3);
            cluster_number += 1;
            let cluster = Cluster::start_single_group(base_port, args.shards, kind).await?;
            for (cell, (workload, clients)) in cells.iter().enumerate() {
                let sample = kvbench_once(&kvbench, &cluster, args, workload, *clients)?;
                println!(
                    "run {run} {:<9} {workload:<4} clients {clients:>3}: {:>8.0} ops/s  p50 {:>7.2} ms  \
                     p99 {:>7.2} ms  errors {}  group CPU {:.0} us/op",
                    side_name(kind),
                    sample.ops_per_second,
                    sample.p50_ms,
                    sample.p99_ms,
                    sample.errors,
                    sample.server_cpu_us,
                );
                samples[side][cell].push(sample);
            }
        }
    }
    print_table(args, &cells, &samples);
    Ok(())
}

/// Runs kvbench once against `cluster` and returns its figures.
fn kvbench_once(
    kvbench: &std::path::Path,
    cluster: &Cluster,
    args: &Args,
    workload: &str,
    clients: u64,
) -> Result<Sample> {
    let kvbench_args = [
        "--ctrler".to_string(),
        cluster.ctrler_addresses().join(","),
        "--workload".into(),
        workload.into(),
        "--clients".into(),
        clients.to_string(),
        "--duration".into(),
        args.duration.to_string(),
        "--keys".into(),
        args.keys.to_string(),
        "--value-bytes".into(),
        args.value_bytes.to_string(),
    ];
    run_kvbench(kvbench, &kvbench_args, &cluster.group(1).pids())
}

/// Prints the medians per cell, the throughput ratio and the p99 check.
fn print_table(args: &Args, cells: &[(String, u64)], samples: &[Vec<Vec<Sample>>; 2]) {
    println!(
        "\nmedians of {} runs, {} s each, {} B values, {} keys; A = shardkv group (every \
         shard), B = raft-node group",
        args.runs, args.duration, args.value_bytes, args.keys
    );
    println!(
        "| workload | clients | A ops/s | A p99 ms | B ops/s | B p99 ms | A/B ops | A p99 <= B p99 \
         | runs with A p99 <= B p99 | group CPU/op A | B |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let mut all_pass = true;
    for (cell, (workload, clients)) in cells.iter().enumerate() {
        let values = |side: usize, f: fn(&Sample) -> f64| -> Vec<f64> {
            samples[side][cell].iter().map(f).collect()
        };
        let figure =
            |side: usize, f: fn(&Sample) -> f64| median(&values(side, f)).unwrap_or(f64::NAN);
        let (a_ops, a_p99) = (figure(0, |s| s.ops_per_second), figure(0, |s| s.p99_ms));
        let (b_ops, b_p99) = (figure(1, |s| s.ops_per_second), figure(1, |s| s.p99_ms));
        let (a_cpu, b_cpu) = (
            figure(0, |s| s.server_cpu_us),
            figure(1, |s| s.server_cpu_us),
        );
        let ratio = a_ops / b_ops;
        let p99_ok = a_p99 <= b_p99;
        let pairs = pairs_no_higher(&values(0, |s| s.p99_ms), &values(1, |s| s.p99_ms));
        all_pass &= ratio >= 0.9 && p99_ok;
        println!(
            "| {workload} | {clients} | {a_ops:.0} | {a_p99:.2} | {b_ops:.0} | {b_p99:.2} | \
             {:.0} % | {} | {pairs} of {} | {a_cpu:.0} us | {b_cpu:.0} us |",
            ratio * 100.0,
            if p99_ok { "yes" } else { "no" },
            samples[0][cell].len(),
        );
    }
    println!(
        "target (A/B >= 90 % and A p99 <= B p99 in every row): {}",
        if all_pass { "met" } else { "missed" }
    );
}
