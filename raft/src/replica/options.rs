//! [`ReplicaOptions`]: how to run one replica of a Raft group as a server,
//! built from the shared flags ([`ServerFlags`]) by a binary or field by
//! field by an in-process test.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::core::NodeId;
use crate::driver::NodeOptions;
use crate::server_flags::ServerFlags;
use crate::transport::Faults;

/// How to run one replica: its node, its gRPC address, its group's
/// replicas and its data dir.
#[derive(Clone, Debug)]
pub struct ReplicaOptions {
    /// The node: group, id, tick, compaction, request deadlines, budgets.
    pub node: NodeOptions,
    /// The gRPC address to serve (Raft peers and the application's API).
    pub listen: SocketAddr,
    /// Every replica of the group, itself included, by id: the voters of
    /// a bootstrapped data dir, the transport's addresses and the leader
    /// hints of replies.
    pub peers: BTreeMap<NodeId, String>,
    /// The directory of the replica's RocksDB.
    pub data_dir: PathBuf,
    /// Tests only: when set, the peer transport is wrapped in a
    /// [`crate::transport::FaultyTransport`] obeying these faults (a clone
    /// of the test's handle), so a test can partition, lose or delay the
    /// Raft messages this replica sends. `None` in production.
    pub faults: Option<Faults>,
}

impl ReplicaOptions {
    /// Returns production defaults ([`NodeOptions::new`]) for replica `id`
    /// of `group`, whose replicas are `peers`.
    pub fn new(
        group: u64,
        id: NodeId,
        listen: SocketAddr,
        peers: BTreeMap<NodeId, String>,
        data_dir: PathBuf,
    ) -> ReplicaOptions {
        ReplicaOptions {
            node: NodeOptions::new(group, id),
            listen,
            peers,
            data_dir,
            faults: None,
        }
    }

    /// Returns the options the shared server flags give replica
    /// `flags.id` of `group`, as given: [`ReplicaOptions::validate`]
    /// refuses those out of range.
    pub fn from_flags(group: u64, flags: &ServerFlags) -> ReplicaOptions {
        let mut options = ReplicaOptions::new(
            group,
            NodeId(flags.id),
            flags.listen,
            flags.peers.clone(),
            flags.data_dir.clone(),
        );
        options.node.tick = Duration::from_millis(flags.tick_ms);
        options.node.compact_interval_entries = flags.compact_interval;
        options.node.compact_keep_entries = flags.compact_keep;
        options
    }

    /// Returns the replica's Raft group.
    pub fn group(&self) -> u64 {
        self.node.group
    }

    /// Returns the replica's id within its group.
    pub fn id(&self) -> NodeId {
        self.node.raft.id
    }

    /// Checks that the options agree with each other and are in range: a
    /// tick of 0 has no meaning (the node's ticker refuses it), and a
    /// compaction interval of 0 would compact after every applied batch;
    /// neither is raised to 1 in silence.
    ///
    /// # Errors
    /// A message naming the disagreement (and the flag that sets it).
    pub fn validate(&self) -> Result<(), String> {
        let id = self.id();
        if id.0 == 0 {
            return Err("the replica id (--id) must not be 0".into());
        }
        if !self.peers.contains_key(&id) {
            return Err(format!(
                "the peers (--peers) must include this replica's id {id}"
            ));
        }
        if self.node.tick.is_zero() {
            return Err("the tick (--tick-ms) must be at least 1 ms".into());
        }
        if self.node.compact_interval_entries == 0 {
            return Err(
                "the compaction interval (--compact-interval) must be at least 1 entry".into(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(id: u64, peers: &[u64]) -> ReplicaOptions {
        let peers = peers
            .iter()
            .map(|&peer| (NodeId(peer), format!("127.0.0.1:{}", 7000 + peer)))
            .collect();
        let listen = "127.0.0.1:7001".parse().expect("address");
        ReplicaOptions::new(3, NodeId(id), listen, peers, PathBuf::from("data"))
    }

    // An id of 0, or one missing from the peers, is refused naming the flag.
    #[test]
    fn an_id_outside_the_peers_is_refused() {
        assert_eq!(options(2, &[1, 2, 3]).validate(), Ok(()));
        let zero = options(0, &[1]).validate().expect_err("id 0");
        assert!(zero.contains("--id"), "{zero}");
        let missing = options(4, &[1, 2, 3]).validate().expect_err("not a peer");
        assert!(missing.contains("--peers"), "{missing}");
    }

    // A tick or a compaction interval of 0 is refused naming its flag, not
    // raised to 1 in silence.
    #[test]
    fn zero_tick_or_compaction_interval_is_refused() {
        let mut no_tick = options(1, &[1]);
        no_tick.node.tick = Duration::ZERO;
        let refused = no_tick.validate().expect_err("tick 0");
        assert!(refused.contains("--tick-ms"), "{refused}");
        let mut no_interval = options(1, &[1]);
        no_interval.node.compact_interval_entries = 0;
        let refused = no_interval.validate().expect_err("interval 0");
        assert!(refused.contains("--compact-interval"), "{refused}");
    }
}
