//! `kvbench`: a closed-loop load generator. N clients each keep one
//! operation in flight (put, get, or a mix) on a keyspace for a duration,
//! or fill the keyspace once, and the run reports throughput and latency
//! percentiles (p50, p90, p99, p99.9, max) from HDR histograms, as text or
//! JSON; a progress bar shows on a terminal.
//!
//! It drives our store through the client library (`--target kv`, the
//! default) or etcd through its gRPC API (`--target etcd --endpoints`):
//! the same workload code on both, so they compare (`compare-etcd`).
//!
//! Get and mixed runs first fill the keyspace, so reads find values.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use kv_bench::store::{Store, Target};

/// Closed-loop load on our store or on etcd.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// The store to drive.
    #[arg(long, value_enum, default_value_t = Target::Kv)]
    target: Target,
    /// Controller replicas, HOST:PORT,... (`--target kv`).
    #[arg(
        long,
        env = "KV_CTRLER",
        default_value = "127.0.0.1:7001",
        value_delimiter = ','
    )]
    ctrler: Vec<String>,
    /// etcd client endpoints, HOST:PORT,... (`--target etcd`).
    #[arg(
        long,
        env = "KV_ETCD_ENDPOINTS",
        default_value = "127.0.0.1:2379",
        value_delimiter = ','
    )]
    endpoints: Vec<String>,
    /// What each client does.
    #[arg(long, value_enum, default_value_t = Workload::Put)]
    workload: Workload,
    /// Concurrent clients (each one operation in flight).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    clients: u64,
    /// How long to measure, in seconds (a fill runs until every key is
    /// written).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Distinct keys.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    keys: u64,
    /// Key size in bytes (at least 8).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(8..=4096))]
    key_bytes: u64,
    /// Value size in bytes.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(0..=1_048_576))]
    value_bytes: u64,
    /// With `--workload mixed`: the fraction of reads.
    #[arg(long, default_value_t = 0.5)]
    read_fraction: f64,
    /// With `--workload get` or `mixed`: the keyspace is already filled
    /// (by an earlier `--workload fill`), so skip the fill.
    #[arg(long)]
    prefilled: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Workload {
    /// Puts of random keys.
    Put,
    /// Gets of random keys (filled first).
    Get,
    /// Gets and puts (`--read-fraction`).
    Mixed,
    /// Puts every key once, the clients sharing the keyspace; measures
    /// the whole fill.
    Fill,
}

/// What one client task measured.
struct Measured {
    latencies: Histogram<u64>,
    errors: u64,
    /// The last failure, to name when nothing succeeded.
    last_error: Option<String>,
}

impl Measured {
    /// Records an operation started at `started`: its latency if it
    /// succeeded, an error otherwise.
    fn record<T>(&mut self, started: Instant, outcome: Result<T>) {
        match outcome {
            Ok(_) => {
                let micros = started.elapsed().as_micros().max(1) as u64;
                self.latencies.saturating_record(micros);
            }
            Err(error) => {
                self.errors += 1;
                self.last_error = Some(format!("{error:#}"));
            }
        }
    }

    /// Returns an empty measurement.
    fn new() -> Measured {
        Measured {
            latencies: latency_histogram(),
            errors: 0,
            last_error: None,
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let Ok(duration) = Duration::try_from_secs_f64(args.duration) else {
        eprintln!("kvbench: --duration must be a non-negative number of seconds");
        return ExitCode::from(2);
    };
    if !(0.0..=1.0).contains(&args.read_fraction) {
        eprintln!("kvbench: --read-fraction must be between 0 and 1");
        return ExitCode::from(2);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("the tokio runtime starts on a supported OS");
    match runtime.block_on(run(&args, duration)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("kvbench: {error:#}");
            ExitCode::from(3)
        }
    }
}

async fn run(args: &Args, duration: Duration) -> Result<()> {
    let addresses = match args.target {
        Target::Kv => &args.ctrler,
        Target::Etcd => &args.endpoints,
    };
    let store = Store::connect(args.target, addresses).await?;
    if matches!(args.workload, Workload::Get | Workload::Mixed) && !args.prefilled {
        let filled = fill(&store, args).await;
        if let Some(error) = filled.last_error {
            anyhow::bail!(
                "{} puts of the fill failed, the last with: {error}",
                filled.errors
            );
        }
    }
    let own_cpu = || kv_bench::probe::cpu_seconds(std::process::id()).unwrap_or(f64::NAN);
    let cpu_before = own_cpu();
    let started = Instant::now();
    let measured = if args.workload == Workload::Fill {
        fill(&store, args).await
    } else {
        timed(&store, args, started + duration).await
    };
    let elapsed = started.elapsed();
    if measured.latencies.is_empty()
        && let Some(error) = &measured.last_error
    {
        anyhow::bail!(
            "every operation failed ({}), the last with: {error}",
            measured.errors
        );
    }
    let cpu = own_cpu() - cpu_before;
    report(args, &measured.latencies, measured.errors, elapsed, cpu);
    Ok(())
}

/// Runs the clients until `deadline`, a progress bar on a terminal, and
/// returns what they measured, merged.
async fn timed(store: &Store, args: &Args, deadline: Instant) -> Measured {
    let started = Instant::now();
    let bar = progress(deadline.saturating_duration_since(started).as_secs());
    let tasks: Vec<_> = (0..args.clients)
        .map(|task| {
            let store = store.clone();
            let plan = Plan::from(args, task);
            tokio::spawn(async move { plan.run(store, deadline).await })
        })
        .collect();
    let ticker = bar.clone().map(|bar| {
        tokio::spawn(async move {
            while Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(200)).await;
                bar.set_position(started.elapsed().as_secs().min(bar.length().unwrap_or(0)));
            }
        })
    });
    let merged = merge(tasks).await;
    if let Some(ticker) = ticker {
        ticker.abort();
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    merged
}

/// Waits for every client task and merges what they measured.
async fn merge(tasks: Vec<tokio::task::JoinHandle<Measured>>) -> Measured {
    let mut merged = Measured::new();
    for task in tasks {
        let measured = task.await.expect("a client task finishes");
        merged
            .latencies
            .add(&measured.latencies)
            .expect("same precision");
        merged.errors += measured.errors;
        merged.last_error = measured.last_error.or(merged.last_error);
    }
    merged
}

/// Returns a histogram of latencies in microseconds, 1 µs to 60 s at 3
/// significant digits (a slower answer counts as 60 s).
fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds")
}

/// Puts every key once, the clients taking every `clients`-th key each,
/// and returns what they measured.
async fn fill(store: &Store, args: &Args) -> Measured {
    let workers = args.clients.min(args.keys);
    let tasks: Vec<_> = (0..workers)
        .map(|worker| {
            let mut store = store.clone();
            let plan = Plan::from(args, worker);
            let (keys, step) = (args.keys, workers);
            tokio::spawn(async move {
                let mut measured = Measured::new();
                let mut key = worker;
                while key < keys {
                    let started = Instant::now();
                    let put = store.put(&plan.key(key), &plan.value).await;
                    measured.record(started, put);
                    key += step;
                }
                measured
            })
        })
        .collect();
    merge(tasks).await
}

/// A progress bar over the run's seconds, on a terminal only.
fn progress(seconds: u64) -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new(seconds);
    let style = ProgressStyle::with_template("{bar:40} {pos}/{len} s").ok()?;
    bar.set_style(style);
    Some(bar)
}

/// What one client task does.
struct Plan {
    workload: Workload,
    keys: u64,
    key_bytes: usize,
    value: Vec<u8>,
    read_per_mille: u64,
    seed: u64,
}

impl Plan {
    fn from(args: &Args, task: u64) -> Plan {
        Plan {
            workload: args.workload,
            keys: args.keys,
            key_bytes: args.key_bytes as usize,
            value: vec![b'v'; args.value_bytes as usize],
            read_per_mille: (args.read_fraction * 1000.0) as u64,
            seed: 0x9E37_79B9_7F4A_7C15 ^ (task + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9),
        }
    }

    /// Returns key number `n`, zero-padded to the key size.
    fn key(&self, n: u64) -> Vec<u8> {
        format!("{n:0width$}", width = self.key_bytes).into_bytes()
    }

    /// Returns the next pseudo-random number (xorshift64*).
    fn next(&mut self) -> u64 {
        self.seed ^= self.seed >> 12;
        self.seed ^= self.seed << 25;
        self.seed ^= self.seed >> 27;
        self.seed.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Runs operations back to back until `deadline`.
    async fn run(mut self, mut store: Store, deadline: Instant) -> Measured {
        let mut measured = Measured::new();
        while Instant::now() < deadline {
            let n = self.next() % self.keys;
            let key = self.key(n);
            let read = match self.workload {
                Workload::Put | Workload::Fill => false,
                Workload::Get => true,
                Workload::Mixed => self.next() % 1000 < self.read_per_mille,
            };
            let started = Instant::now();
            if read {
                let got = store.get(&key).await;
                measured.record(started, got);
            } else {
                let put = store.put(&key, &self.value).await;
                measured.record(started, put);
            }
        }
        measured
    }
}

/// Prints the run's figures; `cpu_seconds` is the CPU time this process
/// (the load generator, client library included) used while measuring.
fn report(
    args: &Args,
    latencies: &Histogram<u64>,
    errors: u64,
    elapsed: Duration,
    cpu_seconds: f64,
) {
    let ops = latencies.len();
    let client_cpu_us = cpu_seconds * 1e6 / (ops.max(1) as f64);
    let throughput = ops as f64 / elapsed.as_secs_f64();
    let ms = |quantile: f64| latencies.value_at_quantile(quantile) as f64 / 1000.0;
    let max = latencies.max() as f64 / 1000.0;
    if args.json {
        let json = serde_json::json!({
            "target": format!("{:?}", args.target).to_lowercase(),
            "workload": format!("{:?}", args.workload).to_lowercase(),
            "clients": args.clients,
            "seconds": elapsed.as_secs_f64(),
            "ops": ops,
            "errors": errors,
            "ops_per_second": throughput,
            "p50_ms": ms(0.5),
            "p90_ms": ms(0.9),
            "p99_ms": ms(0.99),
            "p999_ms": ms(0.999),
            "max_ms": max,
            "client_cpu_us_per_op": client_cpu_us,
        });
        println!("{json}");
    } else {
        println!(
            "{:?} on {:?} with {} clients: {ops} ops in {:.1} s = {throughput:.0} ops/s, {errors} errors",
            args.workload,
            args.target,
            args.clients,
            elapsed.as_secs_f64()
        );
        println!(
            "latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {max:.2}; \
             load generator CPU {client_cpu_us:.0} us/op",
            ms(0.5),
            ms(0.9),
            ms(0.99),
            ms(0.999)
        );
    }
}
