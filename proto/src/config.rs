//! Identifier newtypes and the configuration value (DESIGN.md, "Sharding and
//! configurations"), with their wire form: the vocabulary the controller,
//! the group servers and the clients share, here so none links another.
//!
//! This module owns [`GroupId`], [`ShardId`], [`ConfigNum`] and [`Config`],
//! and the conversion to and from `kv.v1.Config`.
//!
//! Invariants of a [`Config`] produced by the controller (upheld by
//! `ControllerState`, the only producer, and checked on snapshot decode):
//!
//! - `shards.len()` is the shard count, fixed at bootstrap, the same in every
//!   configuration of one cluster.
//! - [`GroupId::UNASSIGNED`] (gid 0) never names a group: it is never a key of
//!   `groups`.
//! - Every shard is on a gid of `groups`, or every shard is on gid 0 when
//!   `groups` is empty.
//! - Every server list is non-empty and no address in it is empty.

use std::collections::BTreeMap;
use std::fmt;

use crate::kv::v1 as pb;

/// The id of a replica group. Gid 0 ([`GroupId::UNASSIGNED`]) is reserved for
/// "no owner" and is never a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct GroupId(pub u64);

impl GroupId {
    /// The reserved gid that owns a shard when no group exists (gid 0).
    pub const UNASSIGNED: GroupId = GroupId(0);

    /// Returns true for the reserved gid 0, which names no group.
    pub const fn is_unassigned(self) -> bool {
        self.0 == 0
    }
}

impl fmt::Display for GroupId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}", self.0)
    }
}

/// The index of a shard, in `0..shard_count`. The shard of a key is
/// `crc32(key) % shard_count` (DESIGN.md, "Public API").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ShardId(pub u32);

impl ShardId {
    /// Returns the shard as an index into [`Config::shards`].
    pub const fn index(self) -> usize {
        // A u32 always fits a usize on the 32- and 64-bit targets we build for.
        self.0 as usize
    }
}

impl fmt::Display for ShardId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}", self.0)
    }
}

/// The number of a configuration. Configuration 0 is the initial one; each
/// Join, Leave and Move creates the next number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ConfigNum(pub u64);

impl ConfigNum {
    /// Returns the number that follows this one.
    pub const fn next(self) -> ConfigNum {
        ConfigNum(self.0 + 1)
    }
}

impl fmt::Display for ConfigNum {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}", self.0)
    }
}

/// One numbered configuration: which group owns each shard, and the servers of
/// each group. A plain value mirroring the public `kv.v1.Config` message; the
/// module documentation lists the invariants the controller keeps for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The number of this configuration.
    pub num: ConfigNum,
    /// Shard `i` is owned by group `shards[i]`; gid 0 means unassigned.
    /// Invariant: the length is the cluster's shard count.
    pub shards: Vec<GroupId>,
    /// The `host:port` of each replica of each group, by gid.
    /// Invariant: gid 0 is never a key; no list is empty.
    pub groups: BTreeMap<GroupId, Vec<String>>,
}

impl Config {
    /// Returns configuration 0: no groups and every one of `shard_count`
    /// shards on gid 0.
    pub fn initial(shard_count: u32) -> Config {
        Config {
            num: ConfigNum(0),
            shards: vec![GroupId::UNASSIGNED; shard_count as usize],
            groups: BTreeMap::new(),
        }
    }

    /// Returns the number of shards (the length of `shards`).
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// Returns the gid owning `shard`, or `None` if the shard is out of range.
    pub fn owner(&self, shard: ShardId) -> Option<GroupId> {
        self.shards.get(shard.index()).copied()
    }

    /// Returns the shards owned by `gid`, in ascending order.
    pub fn shards_of(&self, gid: GroupId) -> Vec<ShardId> {
        (0u32..)
            .zip(&self.shards)
            .filter(|(_, owner)| **owner == gid)
            .map(|(shard, _)| ShardId(shard))
            .collect()
    }

    /// Returns how many shards each group of `groups` owns, zero included,
    /// by gid. Shards on gid 0 or on a gid outside `groups` are not counted.
    pub fn shard_counts(&self) -> BTreeMap<GroupId, usize> {
        let mut counts: BTreeMap<GroupId, usize> =
            self.groups.keys().map(|gid| (*gid, 0)).collect();
        for owner in &self.shards {
            if let Some(count) = counts.get_mut(owner) {
                *count += 1;
            }
        }
        counts
    }
}

impl Config {
    /// Returns the wire form of this configuration.
    pub fn to_proto(&self) -> pb::Config {
        pb::Config {
            num: self.num.0,
            shards: self.shards.iter().map(|gid| gid.0).collect(),
            groups: self
                .groups
                .iter()
                .map(|(gid, servers)| {
                    let list = pb::ServerList {
                        servers: servers.clone(),
                    };
                    (gid.0, list)
                })
                .collect(),
        }
    }

    /// Returns the configuration a wire message carries, as sent: the
    /// invariants above hold for what the controller sent, and are not
    /// checked here.
    pub fn from_proto(wire: pb::Config) -> Config {
        Config {
            num: ConfigNum(wire.num),
            shards: wire.shards.into_iter().map(GroupId).collect(),
            groups: wire
                .groups
                .into_iter()
                .map(|(gid, list)| (GroupId(gid), list.servers))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Configuration 0 has no groups and every shard unassigned (DESIGN.md).
    #[test]
    fn initial_config_has_every_shard_unassigned() {
        let config = Config::initial(10);
        assert_eq!(config.num, ConfigNum(0));
        assert_eq!(config.shard_count(), 10);
        assert!(config.shards.iter().all(|gid| gid.is_unassigned()));
        assert!(config.groups.is_empty());
        assert!(config.shard_counts().is_empty());
    }

    #[test]
    fn owner_and_shards_of_follow_the_shard_table() {
        let mut config = Config::initial(4);
        config.groups.insert(GroupId(7), vec!["a:1".to_string()]);
        config.groups.insert(GroupId(9), vec!["b:1".to_string()]);
        config.shards = vec![GroupId(7), GroupId(9), GroupId(7), GroupId(7)];
        assert_eq!(config.owner(ShardId(1)), Some(GroupId(9)));
        assert_eq!(config.owner(ShardId(4)), None);
        assert_eq!(
            config.shards_of(GroupId(7)),
            vec![ShardId(0), ShardId(2), ShardId(3)]
        );
        let counts = config.shard_counts();
        assert_eq!(counts.get(&GroupId(7)), Some(&3));
        assert_eq!(counts.get(&GroupId(9)), Some(&1));
    }

    // The wire form keeps every field: numbers, the shard table and the
    // server lists by gid; and converts back to the same value.
    #[test]
    fn config_round_trips_through_the_wire_form() {
        let mut config = Config::initial(3);
        config.num = ConfigNum(4);
        config
            .groups
            .insert(GroupId(7), vec!["a:1".into(), "b:2".into()]);
        config.shards = vec![GroupId(7); 3];
        let wire = config.to_proto();
        assert_eq!(wire.num, 4);
        assert_eq!(wire.shards, vec![7, 7, 7]);
        assert_eq!(wire.groups[&7].servers, vec!["a:1", "b:2"]);
        assert_eq!(Config::from_proto(wire), config);
    }

    #[test]
    fn ids_display_as_bare_numbers() {
        assert_eq!(GroupId(3).to_string(), "3");
        assert_eq!(ShardId(4).to_string(), "4");
        assert_eq!(ConfigNum(5).to_string(), "5");
        assert_eq!(ConfigNum(5).next(), ConfigNum(6));
    }
}
