//! Runs the deterministic Raft simulator: one seed (`--seed S`, to replay a
//! failure, with `RUST_LOG=debug` for a trace; `--original-profile` for a
//! seed found before the profile's later dimensions existed) or many in
//! parallel (`--seeds N`), reporting seeds per second, the messages the
//! network damaged, what compaction, snapshot reads and restores did, and
//! every failing seed.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use clap::Parser;
use raft::sim::cluster::SnapshotStats;
use raft::sim::network::Corrupted;
use raft::sim::swarm::{SeedReport, SwarmProfile, run_seed, run_seed_with};

/// Deterministic simulation of Raft clusters under seeded faults.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Replay exactly this seed.
    #[arg(long, conflicts_with = "seeds")]
    seed: Option<u64>,
    /// With --seed: run it with the profile it drew before corruption,
    /// broken snapshot streams, the Figure 8 mode and paired membership
    /// changes existed (the regression seeds of `swarm_seeds.rs`).
    #[arg(long, requires = "seed")]
    original_profile: bool,
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
        let result = if args.original_profile {
            run_seed_with(seed, SwarmProfile::draw_original(seed))
        } else {
            run_seed(seed)
        };
        return match result {
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

/// What the passing seeds of one worker did.
#[derive(Default)]
struct Totals {
    failures: usize,
    operations: usize,
    inconclusive: usize,
    corrupted: Corrupted,
    snapshots: SnapshotStats,
}

impl Totals {
    fn add(&mut self, report: &SeedReport) {
        self.operations += report.operations;
        self.inconclusive += usize::from(report.linearizability_inconclusive);
        self.corrupted += report.corrupted;
        self.snapshots += report.snapshots;
    }

    fn merge(&mut self, other: Totals) {
        self.failures += other.failures;
        self.operations += other.operations;
        self.inconclusive += other.inconclusive;
        self.corrupted += other.corrupted;
        self.snapshots += other.snapshots;
    }
}

fn run_many(start: u64, count: u64, threads: usize) -> ExitCode {
    let next = Arc::new(AtomicU64::new(start));
    let end = start + count;
    let began = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let next = Arc::clone(&next);
            std::thread::spawn(move || {
                let mut totals = Totals::default();
                loop {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed >= end {
                        return totals;
                    }
                    match run_seed(seed) {
                        Ok(report) => totals.add(&report),
                        Err(failure) => {
                            println!("{failure}");
                            totals.failures += 1;
                        }
                    }
                }
            })
        })
        .collect();
    let mut totals = Totals::default();
    for worker in workers {
        totals.merge(worker.join().expect("simulation worker panicked"));
    }
    let seconds = began.elapsed().as_secs_f64();
    let Totals {
        failures,
        operations,
        inconclusive,
        corrupted,
        snapshots,
    } = totals;
    println!(
        "seeds {start}..{end}: {count} run, {failures} failed, {operations} client operations checked \
         ({inconclusive} seeds with an inconclusive linearizability search), \
         {} corrupted snapshot chunks delivered to the crc32 check, {} other corrupted messages dropped, \
         {} chunks lost to broken streams (passing seeds), \
         {seconds:.1} s, {:.1} seeds/s on {threads} threads",
        corrupted.chunks_delivered,
        corrupted.dropped,
        corrupted.chunks_broken,
        count as f64 / seconds
    );
    println!("snapshots (passing seeds): {snapshots:?}");
    if failures == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
