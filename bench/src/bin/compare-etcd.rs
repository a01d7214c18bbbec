//! `compare-etcd`: our store against etcd on the same machine, in the
//! same invocation, driven by the same client code (`kvbench`, through
//! the client library on our side and etcd's gRPC API on the other).
//!
//! Each run starts a fresh cluster of each side in turn, in alternating
//! order (ours then etcd, etcd then ours, ...): ours is three controller
//! replicas and one `shardkv` group of three replicas holding every
//! shard; etcd is three members. Both run on loopback with fsync on and
//! share the machine's cores with the load generator. Against each, every
//! workload runs once: put with 1 and 64 clients, linearizable get with
//! 64 clients, a YCSB-A-like mix (half gets, half puts, uniform keys) with
//! 64 clients, then a fill of `--fill-keys` fresh keys with 64 clients. The
//! etcd side is driven at its leader, as our client drives each group's
//! leader: neither side pays a forward. Each fresh side first takes
//! `--warmup` seconds of puts, unmeasured. The table gives the medians of
//! the runs, the ratio ours/etcd, and each side's resident memory per
//! replica at the end of its runs.
//!
//! Run: `bench/compare-etcd.sh` (installs etcd from Debian if missing,
//! builds, runs), or build with `cargo build --release -p shardctrler -p
//! shardkv -p raft-demo -p kv-bench` and run
//! `target/release/compare-etcd --runs 3`.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Parser;
use kv_bench::cluster::{Cluster, Kind};
use kv_bench::etcd::Etcd;
use kv_bench::kvbench_run::{Sample, kvbench_binary, run_kvbench};
use kv_bench::{median, probe};

/// Our store against etcd, side by side.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Runs of each side; the table gives their medians.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..))]
    runs: u64,
    /// Seconds each timed workload runs.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Distinct keys of the put, get and mixed workloads.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    keys: u64,
    /// Keys written by the fill workload.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    fill_keys: u64,
    /// Key size in bytes.
    #[arg(long, default_value_t = 16)]
    key_bytes: u64,
    /// Value size in bytes.
    #[arg(long, default_value_t = 256)]
    value_bytes: u64,
    /// Seconds of puts from 64 clients each fresh side takes first,
    /// unmeasured, so both are measured running rather than just started
    /// (our RocksDB then writes into recycled WAL files, as etcd writes
    /// into its preallocated WAL segments from the start). 0: none.
    #[arg(long, default_value_t = 5.0)]
    warmup: f64,
    /// The etcd server binary.
    #[arg(long, default_value = "etcd")]
    etcd: PathBuf,
    /// First port: our controllers on the next three, the group 100
    /// above, HTTP 1000 above each; etcd's members at +3000 (clients) and
    /// +3100 (peers). Successive runs alternate between two port sets
    /// 5000 apart, so a new cluster never waits on the last one's sockets.
    #[arg(long, default_value_t = 30000, value_parser = clap::value_parser!(u16).range(1024..=55000))]
    base_port: u16,
}

/// The two sides measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Ours,
    Etcd,
}

const SIDES: [Side; 2] = [Side::Ours, Side::Etcd];

/// One workload: `kvbench --workload` with a client count.
struct Cell {
    label: &'static str,
    workload: &'static str,
    clients: u64,
}

/// The workloads, in the order each run measures them (the fill last: it
/// grows the store).
const CELLS: [Cell; 5] = [
    Cell {
        label: "put",
        workload: "put",
        clients: 1,
    },
    Cell {
        label: "put",
        workload: "put",
        clients: 64,
    },
    Cell {
        label: "get",
        workload: "get",
        clients: 64,
    },
    Cell {
        label: "ycsb-a",
        workload: "mixed",
        clients: 64,
    },
    Cell {
        label: "fill",
        workload: "fill",
        clients: 64,
    },
];

/// What one side measured in every run.
struct Measured {
    /// samples[cell] = one sample per run.
    samples: Vec<Vec<Sample>>,
    /// Resident memory of each replica at the end of each run, in bytes.
    rss: Vec<u64>,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_current_thread();
    kv_bench::block_on_main("compare-etcd", runtime, run(&args))
}

async fn run(args: &Args) -> Result<()> {
    let kvbench = kvbench_binary()?;
    let mut measured: Vec<Measured> = SIDES
        .iter()
        .map(|_| Measured {
            samples: vec![Vec::new(); CELLS.len()],
            rss: Vec::new(),
        })
        .collect();
    for run in 1..=args.runs {
        let order = if run % 2 == 1 { [0, 1] } else { [1, 0] };
        let base_port = args.base_port + 5000 * (run % 2) as u16;
        for side in order {
            let measuring = &mut measured[side];
            match SIDES[side] {
                Side::Ours => {
                    let cluster = Cluster::start_single_group(base_port, 64, Kind::ShardKv).await?;
                    let target = target_ours(&cluster);
                    let pids = cluster.group(1).pids();
                    measure(args, &kvbench, run, Side::Ours, &target, &pids, measuring)?;
                }
                Side::Etcd => {
                    let etcd = Etcd::start(&args.etcd, base_port + 3000).await?;
                    let leader = etcd.leader_endpoint().await?;
                    let target = ["--target", "etcd", "--endpoints", &leader].map(String::from);
                    measure(
                        args,
                        &kvbench,
                        run,
                        Side::Etcd,
                        &target,
                        &etcd.pids(),
                        measuring,
                    )?;
                }
            }
        }
    }
    print_table(args, &measured);
    Ok(())
}

/// kvbench's flags that aim it at our cluster.
fn target_ours(cluster: &Cluster) -> Vec<String> {
    vec![
        "--target".into(),
        "kv".into(),
        "--ctrler".into(),
        cluster.ctrler_addresses().join(","),
    ]
}

/// Runs every workload once against one side (`target`: kvbench's flags
/// that aim at it; `pids`: its replicas), then records their memory.
fn measure(
    args: &Args,
    kvbench: &std::path::Path,
    run: u64,
    side: Side,
    target: &[String],
    pids: &[u32],
    measured: &mut Measured,
) -> Result<()> {
    if args.warmup > 0.0 {
        let mut warmup = target.to_vec();
        warmup.extend(
            [
                "--workload",
                "put",
                "--clients",
                "64",
                "--duration",
                &args.warmup.to_string(),
                "--keys",
                &args.keys.to_string(),
            ]
            .map(String::from),
        );
        run_kvbench(kvbench, &warmup, pids)?;
    }
    for (cell, spec) in CELLS.iter().enumerate() {
        let keys = if spec.workload == "fill" {
            args.fill_keys
        } else {
            args.keys
        };
        let mut kvbench_args = target.to_vec();
        kvbench_args.extend([
            "--workload".into(),
            spec.workload.into(),
            "--clients".into(),
            spec.clients.to_string(),
            "--duration".into(),
            args.duration.to_string(),
            "--keys".into(),
            keys.to_string(),
            "--key-bytes".into(),
            args.key_bytes.to_string(),
            "--value-bytes".into(),
            args.value_bytes.to_string(),
            "--read-fraction".into(),
            "0.5".into(),
        ]);
        let sample = run_kvbench(kvbench, &kvbench_args, pids)?;
        println!(
            "run {run} {:<4} {:<6} clients {:>2}: {:>8.0} ops/s  p50 {:>7.2} ms  p99 {:>7.2} ms  \
             errors {}  CPU/op server {:.0} us, load generator {:.0} us",
            side_name(side),
            spec.label,
            spec.clients,
            sample.ops_per_second,
            sample.p50_ms,
            sample.p99_ms,
            sample.errors,
            sample.server_cpu_us,
            sample.client_cpu_us,
        );
        if sample.errors > 0 {
            bail!(
                "{} {} had errors: the comparison would not be fair",
                side_name(side),
                spec.label
            );
        }
        measured.samples[cell].push(sample);
    }
    measured
        .rss
        .extend(pids.iter().filter_map(|&pid| probe::rss_bytes(pid)));
    Ok(())
}

/// Returns the side's name in the output.
fn side_name(side: Side) -> &'static str {
    match side {
        Side::Ours => "ours",
        Side::Etcd => "etcd",
    }
}

/// Prints the medians per workload, the ratios, and memory per replica.
fn print_table(args: &Args, measured: &[Measured]) {
    println!(
        "\nmedians of {} runs, {} s each (fill: {} keys), {} B keys, {} B values; \
         ours = one shardkv group of 3 holding every shard, etcd = 3 members",
        args.runs, args.duration, args.fill_keys, args.key_bytes, args.value_bytes
    );
    println!(
        "| workload | clients | ours ops/s | etcd ops/s | ours/etcd | ours p50 ms | etcd p50 ms \
         | ours p99 ms | etcd p99 ms | server CPU/op ours | etcd | client CPU/op ours | etcd |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (cell, spec) in CELLS.iter().enumerate() {
        let figure = |side: usize, f: fn(&Sample) -> f64| {
            let values: Vec<f64> = measured[side].samples[cell].iter().map(f).collect();
            median(&values).unwrap_or(f64::NAN)
        };
        let ops = [
            figure(0, |s| s.ops_per_second),
            figure(1, |s| s.ops_per_second),
        ];
        let p50 = [figure(0, |s| s.p50_ms), figure(1, |s| s.p50_ms)];
        let p99 = [figure(0, |s| s.p99_ms), figure(1, |s| s.p99_ms)];
        let cpu = [
            figure(0, |s| s.server_cpu_us),
            figure(1, |s| s.server_cpu_us),
        ];
        let client = [
            figure(0, |s| s.client_cpu_us),
            figure(1, |s| s.client_cpu_us),
        ];
        println!(
            "| {} | {} | {:.0} | {:.0} | {:.2}x | {:.2} | {:.2} | {:.2} | {:.2} | {:.0} us | {:.0} us \
             | {:.0} us | {:.0} us |",
            spec.label,
            spec.clients,
            ops[0],
            ops[1],
            ops[0] / ops[1],
            p50[0],
            p50[1],
            p99[0],
            p99[1],
            cpu[0],
            cpu[1],
            client[0],
            client[1],
        );
    }
    let mib = |side: usize| {
        let values: Vec<f64> = measured[side]
            .rss
            .iter()
            .map(|&b| b as f64 / 1048576.0)
            .collect();
        median(&values).unwrap_or(f64::NAN)
    };
    println!(
        "resident memory per replica at the end of a run (median): ours {:.0} MiB, etcd {:.0} MiB",
        mib(0),
        mib(1)
    );
}
