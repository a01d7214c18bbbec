//! `shardctrler`: one replica of the shard controller group. It serves the
//! public `kv.v1.ShardCtrler` API and the Raft peer protocol on `--listen`,
//! and `/metrics`, `/healthz`, `/readyz` on `--http`, on the replica
//! runtime ([`raft::replica`]).
//!
//! Exit codes ([`raft::exit_code`]): 0 clean stop, 2 bad flags or an
//! address that cannot be bound, 3 a storage failure (corruption, I/O), 4
//! the installed snapshot cannot be restored: an operator must act; 5 the
//! gRPC server failed while running (the data dir is intact).

use std::process::ExitCode;

use clap::Parser;
use raft::replica::ReplicaOptions;
use raft::server_flags::ServerFlags;
use shardctrler::Replica;
use shardctrler::server::CONTROLLER_GROUP;

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
}

fn main() -> ExitCode {
    let args = Args::parse();
    let options = ReplicaOptions::from_flags(CONTROLLER_GROUP, &args.server);
    raft::replica::run("shardctrler", options, &args.server, |options| async move {
        shardctrler::metrics::describe();
        let replica = Replica::start_with(options, args.shards).await?;
        Ok(replica.into_server())
    })
}
