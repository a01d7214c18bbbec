//! Runs the deterministic Raft simulator: one seed (`--seed S`, to replay a
//! failure, with `RUST_LOG=debug` for a trace; `--original-profile` for a
//! seed found before the profile's later dimensions existed) or many in
//! parallel (`--seeds N`), reporting seeds per second, the messages the
//! network damaged, what compaction, snapshot reads and restores did, and
//! every failing seed.

use std::process::ExitCode;

use clap::Parser;
use raft::sim::seeds::{SeedArgs, init_tracing, report_one};
use raft::sim::swarm::{SwarmProfile, run_seed, run_seed_with};

/// Deterministic simulation of Raft clusters under seeded faults.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    seeds: SeedArgs,
    /// With --seed: run it with the profile it drew before corruption,
    /// broken snapshot streams, the Figure 8 mode and paired membership
    /// changes existed (the regression seeds of `swarm_seeds.rs`).
    #[arg(long, requires = "seed")]
    original_profile: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    init_tracing();
    match args.seeds.seed {
        Some(seed) if args.original_profile => {
            report_one(run_seed_with(seed, SwarmProfile::draw_original(seed)))
        }
        _ => args.seeds.run(run_seed),
    }
}
