//! Runs a range of seeds on worker threads (`raft::sim::seeds::fold_seeds`):
//! each failure prints its replay line as soon as it fails, and a summary
//! gives seeds per second and what the passing seeds covered.
//!
//! Invariant: every seed of the range runs exactly once.

use std::time::Instant;

use raft::sim::seeds::fold_seeds;

use crate::world::FaultCounts;
use crate::{Failure, SeedReport, run_seed};

/// What the seeds of a run did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// Seeds run.
    pub seeds: u64,
    /// Failing seeds.
    pub failures: u64,
    /// Client operations checked (passing seeds).
    pub operations: u64,
    /// Admin requests answered (passing seeds).
    pub admin_requests: u64,
    /// Configurations made (passing seeds).
    pub configs: u64,
    /// Shards installed whole (passing seeds).
    pub installs: u64,
    /// Passing seeds whose history search ran out of budget.
    pub inconclusive: u64,
    /// Snapshots restored (passing seeds).
    pub restores: u64,
    /// Faults drawn (passing seeds).
    pub faults: FaultCounts,
}

impl Totals {
    fn add(&mut self, report: &SeedReport) {
        self.operations += report.operations as u64;
        self.admin_requests += report.admin_requests as u64;
        self.configs += report.configs;
        self.installs += report.installs;
        self.inconclusive += u64::from(report.inconclusive);
        self.restores += report.restores;
        self.faults += report.faults;
    }

    fn merge(&mut self, other: Totals) {
        self.seeds += other.seeds;
        self.failures += other.failures;
        self.operations += other.operations;
        self.admin_requests += other.admin_requests;
        self.configs += other.configs;
        self.installs += other.installs;
        self.inconclusive += other.inconclusive;
        self.restores += other.restores;
        self.faults += other.faults;
    }
}

/// Runs seeds `start..start + count` on `threads` threads, printing each
/// failure's replay line and a summary; returns the totals.
pub fn run_seeds(start: u64, count: u64, threads: usize) -> Totals {
    let end = start.saturating_add(count);
    let began = Instant::now();
    let fold = |totals: &mut Totals, result: Result<SeedReport, Failure>| {
        totals.seeds += 1;
        match result {
            Ok(report) => totals.add(&report),
            Err(failure) => {
                println!("{failure}");
                totals.failures += 1;
            }
        }
    };
    let mut totals = Totals::default();
    for worker in fold_seeds(start, count, threads, run_seed, fold) {
        totals.merge(worker);
    }
    let seconds = began.elapsed().as_secs_f64();
    println!(
        "seeds {start}..{end}: {} run, {} failed; passing seeds: {} client operations checked \
         ({} seeds with an inconclusive history search), {} admin requests, {} configurations, \
         {} shards installed; {seconds:.1} s, {:.2} seeds/s on {threads} threads",
        totals.seeds,
        totals.failures,
        totals.operations,
        totals.inconclusive,
        totals.admin_requests,
        totals.configs,
        totals.installs,
        totals.seeds as f64 / seconds
    );
    println!(
        "coverage (passing seeds): {} snapshots restored, {:?}",
        totals.restores, totals.faults
    );
    totals
}
