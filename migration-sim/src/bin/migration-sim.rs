//! Runs the shard migration protocol's deterministic simulation: one seed
//! (`--seed S`, to replay a failure) or many in parallel (`--seeds N`
//! from `--start`), reporting seeds per second and every failing seed with
//! its replay command.

use std::process::ExitCode;

use clap::Parser;
use migration_sim::run_seed;
use migration_sim::runner::run_seeds;
use raft::sim::seeds::{SeedArgs, report_one};

/// The controller and replica groups moving shards under seeded faults.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    seeds: SeedArgs,
}

fn main() -> ExitCode {
    let args = Args::parse().seeds;
    if let Some(seed) = args.seed {
        return report_one(run_seed(seed));
    }
    match run_seeds(args.start, args.seeds, args.threads()).failures {
        0 => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    }
}
