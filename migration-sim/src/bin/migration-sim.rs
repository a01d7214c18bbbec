//! Runs the shard migration protocol's deterministic simulation: one seed
//! (`--seed S`, to replay a failure) or many in parallel (`--seeds N`
//! from `--start`), reporting seeds per second and every failing seed with
//! its replay command.

use std::process::ExitCode;

use clap::Parser;
use migration_sim::run_seed;
use migration_sim::runner::run_seeds;

/// The controller and replica groups moving shards under seeded faults.
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
    match run_seeds(args.start, args.seeds, threads).failures {
        0 => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    }
}
