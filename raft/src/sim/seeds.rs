//! Runs a range of swarm seeds on worker threads and reports them: what
//! every simulator binary (the register map's `raft-sim`, the
//! controller's `ctrler-sim`, `migration-sim`) prints for `--seeds N`.
//! The flags ([`SeedArgs`]), the threads ([`fold_seeds`]), one seed's
//! report ([`report_one`]) and the seed-range tests
//! ([`assert_seeds_pass`]) serve any simulator's report and failure.
//!
//! Invariants: every seed of the range runs exactly once; a failing seed
//! prints its replay line as soon as it fails; the summary counts only
//! passing seeds' coverage.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::sim::cluster::SnapshotStats;
use crate::sim::network::Corrupted;
use crate::sim::swarm::{Failure, SeedReport};

/// The flags every simulator binary takes.
#[derive(clap::Args, Debug)]
pub struct SeedArgs {
    /// Replay exactly this seed (with `RUST_LOG=debug` for a trace).
    #[arg(long, conflicts_with = "seeds")]
    pub seed: Option<u64>,
    /// Run this many seeds, starting at --start.
    #[arg(long, default_value_t = 1000)]
    pub seeds: u64,
    /// The first seed of a --seeds run.
    #[arg(long, default_value_t = 0)]
    pub start: u64,
    /// Worker threads (default: every core).
    #[arg(long)]
    pub threads: Option<usize>,
}

impl SeedArgs {
    /// Runs what the flags ask with `run`: the one seed (printing its
    /// report or its failure) or the range; fails if any seed failed.
    pub fn run(&self, run: fn(u64) -> Result<SeedReport, Failure>) -> ExitCode {
        if let Some(seed) = self.seed {
            return report_one(run(seed));
        }
        match run_seeds(self.start, self.seeds, self.threads(), run).failures {
            0 => ExitCode::SUCCESS,
            _ => ExitCode::FAILURE,
        }
    }

    /// Returns the worker threads asked for (default: every core).
    pub fn threads(&self) -> usize {
        self.threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
    }
}

/// Prints one seed's report or failure; fails with the seed.
pub fn report_one<R: std::fmt::Debug, F: std::fmt::Display>(result: Result<R, F>) -> ExitCode {
    match result {
        Ok(report) => {
            println!("{report:?}");
            ExitCode::SUCCESS
        }
        Err(failure) => {
            println!("{failure}");
            ExitCode::FAILURE
        }
    }
}

/// Sends the simulator's `tracing` output (`RUST_LOG`) to stderr.
pub fn init_tracing() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
}

/// Runs seeds `range` with `run` on this thread and panics listing every
/// failing seed's replay line: the seed-range tests of every simulator.
pub fn assert_seeds_pass<R, F: std::fmt::Display>(
    range: std::ops::Range<u64>,
    run: fn(u64) -> Result<R, F>,
) {
    let failures: Vec<String> = range
        .filter_map(|seed| run(seed).err())
        .map(|failure| failure.to_string())
        .collect();
    assert!(
        failures.is_empty(),
        "{} seeds failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// What the seeds of a run did.
#[derive(Clone, Debug, Default)]
pub struct Totals {
    /// Failing seeds.
    pub failures: usize,
    /// Client operations checked (passing seeds).
    pub operations: usize,
    /// Passing seeds whose history check was inconclusive.
    pub inconclusive: usize,
    /// Damaged messages and broken snapshot streams (passing seeds).
    pub corrupted: Corrupted,
    /// What compaction, snapshot reads and restores did (passing seeds).
    pub snapshots: SnapshotStats,
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

/// Runs `run` on every seed of `start..start + count`, each exactly once,
/// on `threads` worker threads; each worker folds what its seeds gave into
/// its own `T` with `fold`, and the workers' folds are returned.
pub fn fold_seeds<R: 'static, T: Default + Send + 'static>(
    start: u64,
    count: u64,
    threads: usize,
    run: fn(u64) -> R,
    fold: fn(&mut T, R),
) -> Vec<T> {
    let next = Arc::new(AtomicU64::new(start));
    let end = start.saturating_add(count);
    let workers: Vec<_> = (0..threads.max(1))
        .map(|_| {
            let next = Arc::clone(&next);
            std::thread::spawn(move || {
                let mut folded = T::default();
                loop {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed >= end {
                        return folded;
                    }
                    fold(&mut folded, run(seed));
                }
            })
        })
        .collect();
    workers
        .into_iter()
        .map(|worker| worker.join().expect("simulation worker panicked"))
        .collect()
}

/// Runs seeds `start..start + count` with `run` on `threads` threads,
/// printing each failure's replay line as it happens and a summary (seeds
/// per second among it) at the end; returns the totals.
pub fn run_seeds(
    start: u64,
    count: u64,
    threads: usize,
    run: fn(u64) -> Result<SeedReport, Failure>,
) -> Totals {
    let end = start + count;
    let began = Instant::now();
    let fold = |totals: &mut Totals, result: Result<SeedReport, Failure>| match result {
        Ok(report) => totals.add(&report),
        Err(failure) => {
            println!("{failure}");
            totals.failures += 1;
        }
    };
    let mut totals = Totals::default();
    for worker in fold_seeds(start, count, threads, run, fold) {
        totals.merge(worker);
    }
    let seconds = began.elapsed().as_secs_f64();
    println!(
        "seeds {start}..{end}: {count} run, {} failed, {} client operations checked \
         ({} seeds with an inconclusive history check), \
         {} corrupted snapshot chunks delivered to the crc32 check, {} other corrupted messages dropped, \
         {} chunks lost to broken streams (passing seeds), \
         {seconds:.1} s, {:.1} seeds/s on {threads} threads",
        totals.failures,
        totals.operations,
        totals.inconclusive,
        totals.corrupted.chunks_delivered,
        totals.corrupted.dropped,
        totals.corrupted.chunks_broken,
        count as f64 / seconds
    );
    println!("snapshots (passing seeds): {:?}", totals.snapshots);
    totals
}
