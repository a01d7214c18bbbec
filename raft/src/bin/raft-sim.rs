//! Runs the deterministic Raft simulator: one seed (`--seed S`, to replay a
//! failure, with `RUST_LOG=debug` for a trace) or many in parallel
//! (`--seeds N`), reporting seeds per second and every failing seed.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use clap::Parser;
use raft::sim::swarm::{Failure, run_seed};

/// Deterministic simulation of Raft clusters under seeded faults.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Replay exactly this seed.
    #[arg(long, conflicts_with = "seeds")]
    seed: Option<u64>,
    /// Run this many seeds, starting at --start.
    #[arg(long, default_value_t = 1000)]
    seeds: u64,
    /// The first seed of a --seeds run.
    #[arg(long, default_value_t = 0)]
    start: u64,
    /// Worker threads (default: every core).
    #[arg(long)]
    threads: Option<usize>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    if let Some(seed) = args.seed {
        return match run_seed(seed) {
            Ok(report) => {
                println!("{report:?}");
                ExitCode::SUCCESS
            }
            Err(failure) => {
                println!("{failure}");
                ExitCode::FAILURE
            }
        };
    }
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    run_many(args.start, args.seeds, threads)
}

fn run_many(start: u64, count: u64, threads: usize) -> ExitCode {
    let next = Arc::new(AtomicU64::new(start));
    let end = start + count;
    let began = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let next = Arc::clone(&next);
            std::thread::spawn(move || {
                let mut failures: Vec<Failure> = Vec::new();
                let mut operations = 0usize;
                let mut inconclusive = 0usize;
                loop {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed >= end {
                        return (failures, operations, inconclusive);
                    }
                    match run_seed(seed) {
                        Ok(report) => {
                            operations += report.operations;
                            inconclusive += usize::from(report.linearizability_inconclusive);
                        }
                        Err(failure) => {
                            println!("{failure}");
                            failures.push(failure);
                        }
                    }
                }
            })
        })
        .collect();
    let (mut failures, mut operations, mut inconclusive) = (0, 0, 0);
    for worker in workers {
        let (found, ops, unproven) = worker.join().expect("simulation worker panicked");
        failures += found.len();
        operations += ops;
        inconclusive += unproven;
    }
    let seconds = began.elapsed().as_secs_f64();
    println!(
        "seeds {start}..{end}: {count} run, {failures} failed, {operations} client operations checked \
         ({inconclusive} seeds with an inconclusive linearizability search), \
         {seconds:.1} s, {:.1} seeds/s on {threads} threads",
        count as f64 / seconds
    );
    if failures == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
