//! Runs the shard controller's deterministic simulation: one seed
//! (`--seed S`, to replay a failure, with `RUST_LOG=debug` for a trace) or
//! many in parallel (`--seeds N`), reporting seeds per second and every
//! failing seed with its replay command.

use std::process::ExitCode;

use clap::Parser;
use raft::sim::seeds::{SeedArgs, init_tracing};
use shardctrler::sim::run_seed;

/// The shard controller's state machine under seeded faults.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    seeds: SeedArgs,
}

fn main() -> ExitCode {
    let args = Args::parse();
    init_tracing();
    args.seeds.run(run_seed)
}
