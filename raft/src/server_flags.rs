//! The flags every server binary shares (DESIGN.md "Public API": `--id`,
//! `--listen`, `--http`, `--peers`, `--data-dir`; the tick, `--tick-ms`;
//! and the log's compaction, `--compact-interval`, `--compact-keep`), each
//! also read from the environment as `KV_<FLAG>`, with defaults that work
//! on one machine. [`crate::replica::ReplicaOptions::from_flags`] turns
//! them into a replica's options, and
//! [`validate`](crate::replica::ReplicaOptions::validate) checks that they
//! agree and are in range (a server refuses them with exit code 2).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use crate::core::NodeId;

/// Flags of one replica of a Raft group.
#[derive(clap::Args, Clone, Debug)]
pub struct ServerFlags {
    /// This replica's id within its group (1, 2, ...; never 0).
    #[arg(long, env = "KV_ID", default_value_t = 1)]
    pub id: u64,
    /// gRPC address (client API and Raft peer traffic).
    #[arg(long, env = "KV_LISTEN", default_value = "127.0.0.1:7001")]
    pub listen: SocketAddr,
    /// HTTP address for /metrics, /healthz and /readyz.
    #[arg(long, env = "KV_HTTP", default_value = "127.0.0.1:9001")]
    pub http: SocketAddr,
    /// Every replica of the group, itself included: ID=HOST:PORT,...
    /// Used to bootstrap an empty data dir; an existing one wins.
    #[arg(long, env = "KV_PEERS", default_value = "1=127.0.0.1:7001", value_parser = parse_peers)]
    pub peers: BTreeMap<NodeId, String>,
    /// Directory of this replica's RocksDB.
    #[arg(long, env = "KV_DATA_DIR", default_value = "data/node-1")]
    pub data_dir: PathBuf,
    /// Duration of a Raft tick in milliseconds, at least 1 (heartbeat: 1
    /// tick, election timeout: 10 to 20 ticks).
    #[arg(long, env = "KV_TICK_MS", default_value_t = 100)]
    pub tick_ms: u64,
    /// Compact the log every this many applied entries, at least 1 (or
    /// 256 MiB of them). Compaction only drops log entries: the state is
    /// the snapshot.
    #[arg(
        long,
        env = "KV_COMPACT_INTERVAL",
        alias = "snapshot-interval",
        default_value_t = 10_000
    )]
    pub compact_interval: u64,
    /// Entries kept below the applied index at compaction, so a follower a
    /// little behind catches up from the log rather than by snapshot.
    #[arg(long, env = "KV_COMPACT_KEEP", default_value_t = 1_000)]
    pub compact_keep: u64,
    /// Do not serve: ask the server already running at `--http` whether
    /// it is up (`GET /healthz`) and exit 0 if it answers 200, 1 if not
    /// (a container's health check; the image has no other HTTP client).
    #[arg(long)]
    pub probe: bool,
}

/// Parses `ID=HOST:PORT,...` into an ordered map.
pub fn parse_peers(text: &str) -> Result<BTreeMap<NodeId, String>, String> {
    let mut peers = BTreeMap::new();
    for item in text
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
    {
        let (id, address) = item
            .split_once('=')
            .ok_or_else(|| format!("peer `{item}` is not ID=HOST:PORT"))?;
        let id: u64 = id
            .trim()
            .parse()
            .map_err(|_| format!("peer id `{id}` is not a number"))?;
        if id == 0 {
            return Err("peer id 0 is reserved".into());
        }
        let address = address.trim();
        if !proto::address::is_valid_server_address(address) {
            return Err(format!(
                "peer address `{address}` is not HOST:PORT (host: a DNS name, an IPv4 address or a bracketed IPv6 address; port: 1 to 65535)"
            ));
        }
        if peers.insert(NodeId(id), address.to_string()).is_some() {
            return Err(format!("peer id {id} is listed twice"));
        }
    }
    if peers.is_empty() {
        return Err("at least one peer is required".into());
    }
    Ok(peers)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Malformed peer lists are refused with a message naming the problem.
    #[test]
    fn peers_parse_and_bad_lists_are_refused() {
        let peers = parse_peers("1=127.0.0.1:7001, 2=localhost:7002").expect("valid");
        assert_eq!(peers.len(), 2);
        assert_eq!(peers[&NodeId(2)], "localhost:7002");
        for bad in [
            "",
            "1",
            "x=a:1",
            "0=a:1",
            "1=a",
            "1=a:99999",
            "1=a:1,1=b:2",
            "1=:5",
        ] {
            assert!(parse_peers(bad).is_err(), "{bad:?} must be refused");
        }
    }
}
