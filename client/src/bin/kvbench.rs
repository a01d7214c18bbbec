//! `kvbench`: a closed-loop load generator through the client library.
//! N clients each keep one operation in flight (put, get, or a mix) on a
//! keyspace for a duration, and the run reports throughput and latency
//! percentiles (p50, p90, p99, p99.9, max) from HDR histograms, as text or
//! JSON; a progress bar shows on a terminal.
//!
//! Get and mixed runs first fill the keyspace, so reads find values.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use client::{CallOptions, Client, ClientError};
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};

/// Closed-loop load through the client library.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Controller replicas, HOST:PORT,...
    #[arg(
        long,
        env = "KV_CTRLER",
        default_value = "127.0.0.1:7001",
        value_delimiter = ','
    )]
    ctrler: Vec<String>,
    /// What each client does.
    #[arg(long, value_enum, default_value_t = Workload::Put)]
    workload: Workload,
    /// Concurrent clients (each one operation in flight).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    clients: u64,
    /// How long to measure, in seconds.
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
}

/// What one client task measured.
struct Measured {
    latencies: Histogram<u64>,
    errors: u64,
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
            eprintln!("kvbench: {error}");
            ExitCode::from(3)
        }
    }
}

async fn run(args: &Args, duration: Duration) -> Result<(), ClientError> {
    let client = Arc::new(Client::connect(&args.ctrler, CallOptions::default()).await?);
    if args.workload != Workload::Put {
        fill(&client, args).await?;
    }
    let bar = progress(duration.as_secs());
    let started = Instant::now();
    let deadline = started + duration;
    let tasks: Vec<_> = (0..args.clients)
        .map(|task| {
            let client = Arc::clone(&client);
            let plan = Plan::from(args, task);
            tokio::spawn(async move { plan.run(&client, deadline).await })
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
    let mut latencies = latency_histogram();
    let mut errors = 0;
    for task in tasks {
        let measured = task.await.expect("a client task finishes");
        latencies.add(&measured.latencies).expect("same precision");
        errors += measured.errors;
    }
    let elapsed = started.elapsed();
    if let Some(ticker) = ticker {
        ticker.abort();
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    report(args, &latencies, errors, elapsed);
    Ok(())
}

/// Returns a histogram of latencies in microseconds, 1 µs to 60 s at 3
/// significant digits (a slower answer counts as 60 s).
fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds")
}

/// Puts every key once, so reads find values.
async fn fill(client: &Arc<Client>, args: &Args) -> Result<(), ClientError> {
    let workers = args.clients.min(args.keys);
    let tasks: Vec<_> = (0..workers)
        .map(|worker| {
            let client = Arc::clone(client);
            let plan = Plan::from(args, worker);
            let (keys, step) = (args.keys, workers);
            tokio::spawn(async move {
                let mut key = worker;
                while key < keys {
                    client.put(&plan.key(key), &plan.value).await?;
                    key += step;
                }
                Ok::<(), ClientError>(())
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("a fill task finishes")?;
    }
    Ok(())
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
    async fn run(mut self, client: &Client, deadline: Instant) -> Measured {
        let mut measured = Measured {
            latencies: latency_histogram(),
            errors: 0,
        };
        while Instant::now() < deadline {
            let n = self.next() % self.keys;
            let key = self.key(n);
            let read = match self.workload {
                Workload::Put => false,
                Workload::Get => true,
                Workload::Mixed => self.next() % 1000 < self.read_per_mille,
            };
            let started = Instant::now();
            let ok = if read {
                client.get(&key).await.is_ok()
            } else {
                client.put(&key, &self.value).await.is_ok()
            };
            if ok {
                let micros = started.elapsed().as_micros().max(1) as u64;
                measured.latencies.saturating_record(micros);
            } else {
                measured.errors += 1;
            }
        }
        measured
    }
}

/// Prints the run's figures.
fn report(args: &Args, latencies: &Histogram<u64>, errors: u64, elapsed: Duration) {
    let ops = latencies.len();
    let throughput = ops as f64 / elapsed.as_secs_f64();
    let ms = |quantile: f64| latencies.value_at_quantile(quantile) as f64 / 1000.0;
    let max = latencies.max() as f64 / 1000.0;
    if args.json {
        let json = serde_json::json!({
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
        });
        println!("{json}");
    } else {
        println!(
            "{:?} with {} clients: {ops} ops in {:.1} s = {throughput:.0} ops/s, {errors} errors",
            args.workload,
            args.clients,
            elapsed.as_secs_f64()
        );
        println!(
            "latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {max:.2}",
            ms(0.5),
            ms(0.9),
            ms(0.99),
            ms(0.999)
        );
    }
}
