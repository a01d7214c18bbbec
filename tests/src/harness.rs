//! [`Cluster`]: a controller and replica groups of three replicas, in
//! process, over real gRPC and RocksDB in a temp dir, with a
//! fault-injecting transport under every group replica (DESIGN.md
//! "Testing", item 3).
//!
//! Invariants:
//! - Every group replica has its own [`Faults`] handle, kept across
//!   restarts: a replica restarted while partitioned stays partitioned.
//! - Faults act on the Raft messages a replica sends (its group's log and
//!   elections), never on client calls or on shard moves between groups;
//!   a group cut off from its own peers has no leader, so it neither
//!   serves clients nor answers the moves of its shards.
//! - A stopped replica keeps its data dir and its address; restarting it
//!   reopens both.
//! - Waits poll a condition until a deadline ([`eventually`]), never sleep
//!   in its place.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use client::{CallOptions, CtrlerClient};
use proto::config::{Config, ConfigNum, GroupId, ShardId};
use raft::core::{NodeId, Role};
use raft::replica;
use raft::transport::Faults;
use shardctrler::Replica as Controller;
use shardkv::server::{GroupOptions, GroupReplica};
use shardkv::shards::ShardTable;
pub use test_ports::free_addresses;

/// The tick of every replica: elections within a few hundred ms.
pub const TICK: Duration = Duration::from_millis(20);

/// How long a wait may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// The replicas of each group.
pub const GROUP_SIZE: usize = 3;

/// Returns the peers of a group at `addresses`: ids 1, 2, ... in order.
pub fn peers(addresses: &[String]) -> BTreeMap<NodeId, String> {
    (1u64..)
        .zip(addresses)
        .map(|(id, address)| (NodeId(id), address.clone()))
        .collect()
}

/// Calls `call` until it returns `Some`, or panics after [`DEADLINE`].
pub async fn eventually<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    call: impl FnMut() -> F,
) -> T {
    eventually_within(what, DEADLINE, call).await
}

/// Calls `call` until it returns `Some`, or panics after `deadline`.
pub async fn eventually_within<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    deadline: Duration,
    mut call: impl FnMut() -> F,
) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = call().await {
            return value;
        }
        assert!(
            start.elapsed() < deadline,
            "{what}: no success within {deadline:?}"
        );
        tokio::time::sleep(TICK).await;
    }
}

/// Returns the bytes of every file under `dir` (0 if it is missing).
pub fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_dir() => dir_bytes(&entry.path()),
            Ok(meta) => meta.len(),
            Err(_) => 0,
        })
        .sum()
}

/// How to start a [`Cluster`].
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// The shard count of the controller's configuration 0.
    pub shard_count: u32,
    /// Log compaction of every group replica: compact after this many
    /// applied entries, keeping this many below the applied index. `None`:
    /// the production defaults (10,000 and 1,000).
    pub compaction: Option<(u64, u64)>,
    /// Seeds the random losses of every replica's faults.
    pub seed: u64,
}

/// The shard count of the lab's scenarios.
pub const LAB_SHARDS: u32 = 10;

impl ClusterOptions {
    /// Returns the lab's options: [`LAB_SHARDS`] shards, losses seeded
    /// with `seed`, the default compaction.
    pub fn lab(seed: u64) -> ClusterOptions {
        ClusterOptions {
            shard_count: LAB_SHARDS,
            compaction: None,
            seed,
        }
    }
}

impl Default for ClusterOptions {
    /// Returns 4 shards, the default compaction, seed 1.
    fn default() -> ClusterOptions {
        ClusterOptions {
            shard_count: 4,
            compaction: None,
            seed: 1,
        }
    }
}

/// One group replica: how to start it, its faults and, while it runs, the
/// replica.
struct Member {
    options: GroupOptions,
    faults: Faults,
    running: Option<GroupReplica>,
}

/// One controller replica and replica groups of [`GROUP_SIZE`] replicas
/// each, in process.
pub struct Cluster {
    _dir: tempfile::TempDir,
    controller: Controller,
    ctrler_addresses: Vec<String>,
    admin: CtrlerClient,
    groups: BTreeMap<u64, Vec<Member>>,
}

impl Cluster {
    /// Starts the controller (4 shards) and groups `gids`, none joined.
    pub async fn start(gids: &[u64]) -> Cluster {
        Cluster::start_with(ClusterOptions::default(), gids).await
    }

    /// Starts the controller and groups `gids` as `options` say, none
    /// joined.
    pub async fn start_with(options: ClusterOptions, gids: &[u64]) -> Cluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let ctrler_addresses = free_addresses(1);
        let mut ctrler_options = shardctrler::ReplicaOptions::new(
            NodeId(1),
            ctrler_addresses[0].parse().expect("address"),
            peers(&ctrler_addresses),
            dir.path().join("ctrler"),
        );
        ctrler_options.shard_count = options.shard_count;
        ctrler_options.replica.node.tick = TICK;
        let controller = Controller::start(ctrler_options)
            .await
            .expect("controller starts");
        let admin_options = CallOptions {
            deadline: DEADLINE,
            ..CallOptions::default()
        };
        let admin = CtrlerClient::new(&ctrler_addresses, admin_options).expect("admin client");
        let mut groups = BTreeMap::new();
        for &gid in gids {
            let members = start_group_members(&options, gid, dir.path(), &ctrler_addresses).await;
            groups.insert(gid, members);
        }
        Cluster {
            _dir: dir,
            controller,
            ctrler_addresses,
            admin,
            groups,
        }
    }

    /// Returns the controller's addresses.
    pub fn ctrler(&self) -> Vec<String> {
        self.ctrler_addresses.clone()
    }

    /// Returns the addresses of group `gid`'s replicas.
    pub fn addresses(&self, gid: u64) -> Vec<String> {
        self.members(gid)
            .iter()
            .map(|member| member.options.replica.listen.to_string())
            .collect()
    }

    /// Returns the addresses of every replica of every group.
    pub fn all_addresses(&self) -> Vec<String> {
        self.groups
            .keys()
            .flat_map(|&gid| self.addresses(gid))
            .collect()
    }

    /// Returns a data client of the cluster with `deadline` per call.
    pub async fn client(&self, deadline: Duration) -> client::Client {
        let options = CallOptions {
            deadline,
            ..CallOptions::default()
        };
        client::Client::connect(&self.ctrler_addresses, options)
            .await
            .expect("client connects")
    }

    fn members(&self, gid: u64) -> &Vec<Member> {
        self.groups
            .get(&gid)
            .unwrap_or_else(|| panic!("no group {gid}"))
    }

    fn members_mut(&mut self, gid: u64) -> &mut Vec<Member> {
        self.groups
            .get_mut(&gid)
            .unwrap_or_else(|| panic!("no group {gid}"))
    }

    /// Joins groups `gids` to the controller in one configuration;
    /// returns its number.
    pub async fn join_many(&mut self, gids: &[u64]) -> ConfigNum {
        let groups = gids.iter().map(|&gid| (gid, self.addresses(gid))).collect();
        let config = self.admin.join(groups).await.expect("join");
        ConfigNum(config.num)
    }

    /// Joins group `gid`; returns the configuration's number.
    pub async fn join(&mut self, gid: u64) -> ConfigNum {
        self.join_many(&[gid]).await
    }

    /// Removes groups `gids` in one configuration; returns its number.
    pub async fn leave_many(&mut self, gids: &[u64]) -> ConfigNum {
        let config = self.admin.leave(gids.to_vec()).await.expect("leave");
        ConfigNum(config.num)
    }

    /// Removes group `gid`; returns the configuration's number.
    pub async fn leave(&mut self, gid: u64) -> ConfigNum {
        self.leave_many(&[gid]).await
    }

    /// Gives `shard` to group `gid`; returns the configuration's number.
    pub async fn move_shard(&mut self, shard: u32, gid: u64) -> ConfigNum {
        let config = self.admin.move_shard(shard, gid).await.expect("move");
        ConfigNum(config.num)
    }

    /// Returns the controller's latest configuration.
    pub async fn latest_config(&mut self) -> Config {
        let config = self.admin.query(-1).await.expect("query");
        Config::from_proto(config)
    }

    /// Returns replica `index` (0-based) of `gid`, if it runs.
    pub fn replica(&self, gid: u64, index: usize) -> Option<&GroupReplica> {
        self.members(gid)[index].running.as_ref()
    }

    /// Returns the running replicas of `gid`.
    pub fn replicas(&self, gid: u64) -> impl Iterator<Item = &GroupReplica> {
        self.members(gid)
            .iter()
            .filter_map(|member| member.running.as_ref())
    }

    /// Returns the index of the replica of `gid` that leads, if one does.
    pub fn leader(&self, gid: u64) -> Option<usize> {
        self.members(gid).iter().position(|member| {
            member
                .running
                .as_ref()
                .is_some_and(|replica| replica.handle().status().role == Role::Leader)
        })
    }

    /// Waits for a leader of `gid`; returns its index.
    pub async fn wait_leader(&self, gid: u64) -> usize {
        eventually("a leader", || async { self.leader(gid) }).await
    }

    /// Returns the data dir of replica `index` of `gid`.
    pub fn data_dir(&self, gid: u64, index: usize) -> PathBuf {
        self.members(gid)[index].options.replica.data_dir.clone()
    }

    /// Returns the bytes on disk of replica `index` of `gid`.
    pub fn data_dir_bytes(&self, gid: u64, index: usize) -> u64 {
        dir_bytes(&self.data_dir(gid, index))
    }

    /// Returns the shard table of every running replica of `gid`.
    pub fn tables(&self, gid: u64) -> Vec<ShardTable> {
        self.replicas(gid)
            .map(|replica| replica.reader().table().expect("table readable"))
            .collect()
    }

    /// Returns the keys and sessions of `shard` stored by every running
    /// replica of `gid`.
    pub fn stored(&self, gid: u64, shard: ShardId) -> Vec<(usize, usize)> {
        self.replicas(gid)
            .map(|replica| replica.reader().stored(shard).expect("readable"))
            .collect()
    }

    /// Stops replica `index` of `gid` at once, as a crash would (requests
    /// in flight fail; what was committed to disk stays).
    pub fn crash(&mut self, gid: u64, index: usize) {
        if let Some(replica) = self.members_mut(gid)[index].running.take() {
            replica.stop();
        }
    }

    /// Starts replica `index` of `gid` again on its data dir and address
    /// (once the stopped server released the port and the database).
    ///
    /// Known limit: a replica stopped while a data client keeps an idle
    /// connection to it keeps its RocksDB open (the server's connection
    /// task still holds the services), so restarting it alone fails on
    /// the database's lock until that client reconnects; restarting its
    /// whole group ([`Cluster::stop_group`], [`Cluster::start_group`])
    /// makes the clients reconnect.
    pub async fn restart(&mut self, gid: u64, index: usize) {
        let options = self.members(gid)[index].options.clone();
        assert!(
            self.members(gid)[index].running.is_none(),
            "replica {index} of group {gid} runs"
        );
        let replica = eventually("the replica restarts", || {
            let options = options.clone();
            async move {
                let started = GroupReplica::start(options).await;
                if let Err(error) = &started {
                    eprintln!("replica {index} of group {gid} does not start yet: {error}");
                }
                started.ok()
            }
        })
        .await;
        self.members_mut(gid)[index].running = Some(replica);
    }

    /// Stops every replica of group `gid` (their data dirs stay).
    pub fn stop_group(&mut self, gid: u64) {
        for index in 0..self.members(gid).len() {
            self.crash(gid, index);
        }
    }

    /// Starts every stopped replica of group `gid` again.
    pub async fn start_group(&mut self, gid: u64) {
        for index in 0..self.members(gid).len() {
            if self.members(gid)[index].running.is_none() {
                self.restart(gid, index).await;
            }
        }
    }

    /// Cuts the replicas `side` of `gid` from the others, both ways (a
    /// side of one replica: it is paused as far as its group can tell).
    pub fn partition(&self, gid: u64, side: &[usize]) {
        let members = self.members(gid);
        let id = |index: usize| NodeId(index as u64 + 1);
        for (index, member) in members.iter().enumerate() {
            let inside = side.contains(&index);
            let across = (0..members.len()).filter(|other| side.contains(other) != inside);
            member.faults.partition(across.map(id));
        }
    }

    /// Cuts replica `index` of `gid` from its peers, both ways: it neither
    /// hears from nor reaches its group until [`Cluster::heal`].
    pub fn pause(&self, gid: u64, index: usize) {
        self.partition(gid, &[index]);
    }

    /// Cuts every replica of `gid` from every other: the group has no
    /// quorum, so it serves nothing and hands over nothing.
    pub fn isolate_group(&self, gid: u64) {
        let members = self.members(gid);
        for member in members {
            member
                .faults
                .partition((1..=members.len() as u64).map(NodeId));
        }
    }

    /// Removes every fault (partition, loss, delay) of `gid`'s replicas.
    pub fn heal(&self, gid: u64) {
        for member in self.members(gid) {
            member.faults.heal();
        }
    }

    /// Removes every fault of every group.
    pub fn heal_all(&self) {
        for &gid in self.groups.keys() {
            self.heal(gid);
        }
    }

    /// Loses each Raft message every replica of `gid` sends with
    /// `probability`, and delays the rest by `delay`.
    pub fn set_unreliable(&self, gid: u64, probability: f64, delay: Duration) {
        for member in self.members(gid) {
            member.faults.set_loss(probability);
            member.faults.set_delay(delay);
        }
    }

    /// Returns the Raft messages the faults of `gid` dropped so far.
    pub fn dropped(&self, gid: u64) -> u64 {
        self.members(gid)
            .iter()
            .map(|member| member.faults.dropped())
            .sum()
    }

    /// Waits until every running replica of `gid` holds no shard.
    pub async fn wait_empty(&self, gid: u64) {
        eventually("the group hands over every shard", || async {
            let empty = self
                .tables(gid)
                .iter()
                .all(|table| table.states().next().is_none());
            empty.then_some(())
        })
        .await;
    }

    /// Waits until every running replica of every group has applied
    /// configuration `num` or a later one and has settled (no shard
    /// pulling, sending to a group or cleaning); at the deadline, fails
    /// showing every replica's table.
    pub async fn wait_settled(&self, num: ConfigNum) {
        let start = Instant::now();
        loop {
            let settled = self.groups.keys().all(|&gid| {
                self.tables(gid)
                    .iter()
                    .all(|table| table.config().num >= num && table.settled())
            });
            if settled {
                return;
            }
            if start.elapsed() > 2 * DEADLINE {
                panic!("the groups did not settle in {num:?}: {}", self.describe());
            }
            tokio::time::sleep(TICK).await;
        }
    }

    /// Returns each running replica's role, configuration and shard
    /// states, for failure messages.
    pub fn describe(&self) -> String {
        let mut lines = Vec::new();
        for (&gid, members) in &self.groups {
            for (index, member) in members.iter().enumerate() {
                let Some(replica) = &member.running else {
                    lines.push(format!("group {gid} replica {index}: stopped"));
                    continue;
                };
                let status = replica.handle().status();
                let table = replica.reader().table();
                let shown = table.map(|table| {
                    let states: Vec<String> = table
                        .states()
                        .map(|(shard, state)| format!("{}:{state:?}", shard.0))
                        .collect();
                    format!("config {} {}", table.config().num.0, states.join(" "))
                });
                lines.push(format!(
                    "group {gid} replica {index}: {:?} term {} applied {} {shown:?}",
                    status.role, status.term.0, status.applied.0
                ));
            }
        }
        lines.join("\n")
    }

    /// Waits until every running replica of `gid` serves `shard` (its
    /// data has arrived: `Serving` or `Cleaning`).
    pub async fn wait_serving(&self, gid: u64, shard: ShardId) {
        eventually("the shard serves", || async {
            let serving = self.tables(gid).iter().all(|table| {
                table.config().owner(shard) == Some(GroupId(gid))
                    && table.state(shard).is_some_and(|state| state.serves())
            });
            serving.then_some(())
        })
        .await;
    }

    /// Stops every replica.
    pub fn stop(self) {
        for member in self.groups.into_values().flatten() {
            if let Some(replica) = member.running {
                replica.stop();
            }
        }
        self.controller.stop();
    }
}

/// Starts the replicas of group `gid`, each with its own faults, data dirs
/// under `root`.
async fn start_group_members(
    options: &ClusterOptions,
    gid: u64,
    root: &Path,
    ctrler: &[String],
) -> Vec<Member> {
    let addresses = free_addresses(GROUP_SIZE);
    let mut members = Vec::new();
    for (id, address) in peers(&addresses) {
        let mut replica_options = replica::ReplicaOptions::new(
            gid,
            id,
            address.parse().expect("address"),
            peers(&addresses),
            root.join(format!("group-{gid}-{}", id.0)),
        );
        replica_options.node.tick = TICK;
        if let Some((interval, keep)) = options.compaction {
            replica_options.node.compact_interval_entries = interval;
            replica_options.node.compact_keep_entries = keep;
        }
        let faults = Faults::new(options.seed * 1_000 + gid * 10 + id.0);
        replica_options.faults = Some(faults.clone());
        let group_options = GroupOptions {
            replica: replica_options,
            ctrler: ctrler.to_vec(),
            config_poll: TICK,
        };
        let replica = GroupReplica::start(group_options.clone())
            .await
            .expect("group replica starts");
        members.push(Member {
            options: group_options,
            faults,
            running: Some(replica),
        });
    }
    members
}

/// Returns a key of `shard` (of `shard_count`): the first `s{shard}-{n}`
/// the key hash puts there.
pub fn key_in_shard(shard: u32, shard_count: u32) -> String {
    (0u64..)
        .map(|n| format!("s{shard}-{n}"))
        .find(|key| proto::shard_of_key(key.as_bytes(), shard_count) == shard)
        .expect("some key hashes to every shard")
}
