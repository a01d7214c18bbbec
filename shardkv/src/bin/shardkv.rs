//! `shardkv`: one replica of replica group `--gid`. It serves the public
//! `kv.v1.ShardKv` API and the Raft peer protocol on `--listen`, and
//! `/metrics`, `/healthz`, `/readyz` on `--http`, on the replica runtime
//! ([`raft::replica`]); its leader follows the controller at `--ctrler`.
//!
//! Exit codes ([`raft::exit_code`]): 0 clean stop, 2 bad flags, an address
//! that cannot be bound or no controller to learn the shard count from, 3
//! a storage failure (corruption, I/O, a data dir of another group), 4 the
//! installed snapshot cannot be restored, 5 the gRPC server failed while
//! running.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use raft::replica::ReplicaOptions;
use raft::server_flags::ServerFlags;
use shardkv::server::{GroupOptions, GroupReplica};

/// One replica of a replica group: the shards the controller gives the
/// group, replicated by Raft and stored in RocksDB.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    server: ServerFlags,
    /// The group's id (1 or more), as joined to the controller.
    #[arg(long, env = "KV_GID")]
    gid: u64,
    /// The controller replicas, `HOST:PORT,...`.
    #[arg(long, env = "KV_CTRLER", value_delimiter = ',', required = true)]
    ctrler: Vec<String>,
    /// How often the group's leader asks the controller for the next
    /// configuration even when the controller's Watch stream announced
    /// none (a stalled stream), in milliseconds.
    #[arg(long, env = "KV_CONFIG_POLL_MS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    config_poll_ms: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let replica = ReplicaOptions::from_flags(args.gid, &args.server);
    let options = GroupOptions {
        replica: replica.clone(),
        ctrler: args.ctrler,
        config_poll: Duration::from_millis(args.config_poll_ms),
    };
    raft::replica::run("shardkv", replica, &args.server, |replica| async move {
        shardkv::metrics::describe();
        let group = GroupReplica::start(GroupOptions { replica, ..options }).await?;
        Ok(group.into_server())
    })
}
