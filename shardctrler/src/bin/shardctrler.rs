//! `shardctrler`: one replica of the shard controller group. It serves the
//! public `kv.v1.ShardCtrler` API and the Raft peer protocol on `--listen`,
//! and `/metrics`, `/healthz`, `/readyz` on `--http`.
//!
//! Exit codes ([`raft::exit_code`]): 0 clean stop, 2 bad flags or an
//! address that cannot be bound, 3 a storage failure (corruption, I/O), 4
//! the installed snapshot cannot be restored: an operator must act.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use raft::core::NodeId;
use raft::server_flags::ServerFlags;
use shardctrler::server::Stopped;
use shardctrler::{Replica, ReplicaOptions, StartError};

use raft::exit_code::{CONFIG as EXIT_CONFIG, STORAGE as EXIT_STORAGE};

/// One replica of the shard controller: the Raft-replicated service that
/// holds the numbered configurations (which group owns each shard).
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    server: ServerFlags,
    /// Shard count of a new cluster. Read only when bootstrapping an empty
    /// data dir; every replica must be given the same value.
    #[arg(long, env = "KV_SHARDS", default_value_t = 64)]
    shards: u32,
    /// Duration of a Raft tick in milliseconds (heartbeat: 1 tick,
    /// election timeout: 10 to 20 ticks).
    #[arg(long, env = "KV_TICK_MS", default_value_t = 100)]
    tick_ms: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    raft::observability::init_logging();
    if let Err(message) = args.server.validate() {
        eprintln!("shardctrler: {message}");
        return ExitCode::from(EXIT_CONFIG);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("the tokio runtime starts on a supported OS");
    runtime.block_on(run(args))
}

async fn run(args: Args) -> ExitCode {
    // First, so a stop signal during start-up is acted on once started.
    let mut termination = raft::termination::Termination::install();
    let metrics = match raft::observability::install_recorder() {
        Ok(metrics) => metrics,
        Err(message) => {
            tracing::error!(message, "cannot install the metrics recorder");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    shardctrler::metrics::describe();
    let mut options = ReplicaOptions::new(
        NodeId(args.server.id),
        args.server.listen,
        args.server.peers.clone(),
        args.server.data_dir.clone(),
    );
    options.shard_count = args.shards;
    options.tick = Duration::from_millis(args.tick_ms.max(1));
    options.compact_interval_entries = args.server.compact_interval.max(1);
    options.compact_keep_entries = args.server.compact_keep;
    let mut replica = match Replica::start(options).await {
        Ok(replica) => replica,
        Err(error) => {
            tracing::error!(%error, "cannot start the controller replica");
            return ExitCode::from(start_exit_code(&error));
        }
    };
    let status = replica.handle().watch_status();
    let ready: raft::observability::ReadinessProbe =
        Arc::new(move || status.borrow().leader.is_some());
    let http = args.server.http;
    tokio::spawn(async move {
        if let Err(error) = raft::observability::serve(http, metrics, ready).await {
            tracing::error!(%error, %http, "the HTTP server stopped");
        }
    });
    let stopped = tokio::select! {
        stopped = replica.wait() => Some(stopped),
        () = termination.requested() => None,
    };
    let Some(stopped) = stopped else {
        tracing::info!("termination requested, stopping");
        // Stops serving and the node; dropping the replica waits for the
        // node's thread, which closes the database.
        replica.stop();
        return ExitCode::SUCCESS;
    };
    match stopped {
        Stopped::NodeEnded => ExitCode::SUCCESS,
        Stopped::ServerEnded(reason) => {
            tracing::error!(reason, "the gRPC server stopped");
            ExitCode::from(EXIT_CONFIG)
        }
        Stopped::Storage(error) => {
            tracing::error!(%error, "the raft node stopped on a storage failure");
            ExitCode::from(raft::exit_code::for_storage_error(&error))
        }
        Stopped::NodePanicked(reason) => {
            tracing::error!(reason, "the raft node failed");
            ExitCode::from(EXIT_STORAGE)
        }
    }
}

fn start_exit_code(error: &StartError) -> u8 {
    match error {
        StartError::Config(_) | StartError::Bind { .. } => EXIT_CONFIG,
        StartError::Storage(error) => raft::exit_code::for_storage_error(error),
        StartError::Node(error) => raft::exit_code::for_start_error(error),
    }
}
