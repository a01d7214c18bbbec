//! Unit tests of [`ControllerState`]: the MIT 6.824 shardctrler lab scenarios
//! (basic join/leave/query, historical queries, move, multi-group join and
//! leave, minimal transfers, more groups than shards) ported to the pure
//! state machine, at-most-once retries, and every kind of bad input refused
//! with the history unchanged. Random sequences are in
//! `tests/rebalance_props.rs`.

use std::collections::BTreeSet;

use super::ControllerState;
use crate::command::{Command, Request};
use crate::error::AdminError;
use crate::types::{Config, ConfigNum, GroupId, ShardId};

pub(super) const SHARD_COUNT: u32 = 10;
pub(super) const ADMIN: u64 = 42;

pub(super) fn servers(gid: u64) -> Vec<String> {
    vec![format!("g{gid}-a:7000"), format!("g{gid}-b:7000")]
}

pub(super) fn join_command(gids: &[u64]) -> Command {
    let groups = gids.iter().map(|gid| (GroupId(*gid), servers(*gid)));
    Command::Join {
        groups: groups.collect(),
    }
}

pub(super) fn leave_command(gids: &[u64]) -> Command {
    Command::Leave {
        gids: gids.iter().map(|gid| GroupId(*gid)).collect(),
    }
}

pub(super) fn move_command(shard: u32, gid: u64) -> Command {
    Command::Move {
        shard: ShardId(shard),
        gid: GroupId(gid),
    }
}

/// A controller state with one admin client that numbers its requests.
pub(super) struct Tester {
    pub(super) state: ControllerState,
    pub(super) seq: u64,
}

impl Tester {
    pub(super) fn new() -> Tester {
        Tester {
            state: ControllerState::new(SHARD_COUNT),
            seq: 0,
        }
    }

    pub(super) fn try_apply(&mut self, command: Command) -> Result<Config, AdminError> {
        self.seq += 1;
        let request = Request {
            client_id: ADMIN,
            seq: self.seq,
            timestamp_ms: 0,
            command,
        };
        self.state.apply(request)
    }

    pub(super) fn apply(&mut self, command: Command) -> Config {
        let config = self.try_apply(command).expect("request should succeed");
        assert_eq!(self.state.latest(), &config);
        self.state.check_invariants().expect("invariants hold");
        config
    }

    pub(super) fn join(&mut self, gids: &[u64]) -> Config {
        self.apply(join_command(gids))
    }

    pub(super) fn leave(&mut self, gids: &[u64]) -> Config {
        self.apply(leave_command(gids))
    }
}

/// Asserts the lab's `check`: the groups are exactly `gids`, every shard is on
/// one of them (gid 0 only with no groups), and loads differ by at most one.
fn assert_balanced(config: &Config, gids: &[u64]) {
    let expected: BTreeSet<GroupId> = gids.iter().map(|gid| GroupId(*gid)).collect();
    let actual: BTreeSet<GroupId> = config.groups.keys().copied().collect();
    assert_eq!(actual, expected, "groups of config {}", config.num);
    if gids.is_empty() {
        assert!(config.shards.iter().all(|gid| gid.is_unassigned()));
        return;
    }
    assert!(config.shards.iter().all(|gid| expected.contains(gid)));
    let counts = config.shard_counts();
    let max = counts.values().max().copied().unwrap_or(0);
    let min = counts.values().min().copied().unwrap_or(0);
    assert!(
        max - min <= 1,
        "unbalanced config {}: {counts:?}",
        config.num
    );
}

fn moved_count(before: &Config, after: &Config) -> usize {
    let pairs = before.shards.iter().zip(&after.shards);
    pairs.filter(|(old, new)| old != new).count()
}

// Lab "Test: Basic leave/join": join two groups one at a time, leave them,
// and check each configuration.
#[test]
fn basic_join_leave_query() {
    let mut tester = Tester::new();
    assert_eq!(tester.state.query(-1), Ok(&Config::initial(SHARD_COUNT)));
    let first = tester.join(&[1]);
    assert_eq!(first.num, ConfigNum(1));
    assert_balanced(&first, &[1]);
    assert_eq!(first.groups.get(&GroupId(1)), Some(&servers(1)));
    let second = tester.join(&[2]);
    assert_eq!(second.num, ConfigNum(2));
    assert_balanced(&second, &[1, 2]);
    assert_eq!(tester.state.query(1), Ok(&first), "history must not change");
    assert_balanced(&tester.leave(&[1]), &[2]);
    assert_balanced(&tester.leave(&[2]), &[]);
    assert_eq!(tester.state.latest().num, ConfigNum(4));
}

// Lab "Test: Historical queries": every configuration stays queryable by its
// number; -1 and numbers past the latest give the latest.
#[test]
fn historical_queries_return_each_config() {
    let mut tester = Tester::new();
    let mut created = vec![Config::initial(SHARD_COUNT)];
    created.push(tester.join(&[1, 2]));
    created.push(tester.join(&[3]));
    created.push(tester.apply(move_command(0, 3)));
    created.push(tester.leave(&[2]));
    for (num, config) in (0i64..).zip(&created) {
        assert_eq!(tester.state.query(num), Ok(config));
    }
    let latest = created.last().expect("configs were created");
    assert_eq!(tester.state.query(-1), Ok(latest));
    assert_eq!(tester.state.query(5), Ok(latest));
    assert_eq!(tester.state.query(i64::MAX), Ok(latest));
    assert_eq!(tester.state.history(), created.as_slice());
}

#[test]
fn query_refuses_negative_numbers_other_than_minus_one() {
    let tester = Tester::new();
    for num in [-2, -100, i64::MIN] {
        assert_eq!(
            tester.state.query(num),
            Err(AdminError::InvalidConfigNum { num })
        );
    }
}

// Lab "Test: Move": moves put exactly the named shard on the named group and
// do not rebalance; a later Join rebalances again (Move pins nothing).
#[test]
fn move_changes_one_shard_and_join_rebalances_after() {
    let mut tester = Tester::new();
    tester.join(&[1, 2]);
    for shard in 0..SHARD_COUNT {
        let gid = if shard < SHARD_COUNT / 2 { 1 } else { 2 };
        let before = tester.state.latest().clone();
        let after = tester.apply(move_command(shard, gid));
        assert_eq!(after.num, before.num.next());
        assert_eq!(after.owner(ShardId(shard)), Some(GroupId(gid)));
        assert!(moved_count(&before, &after) <= 1);
        assert_eq!(after.groups, before.groups);
    }
    let skewed = tester.apply(move_command(9, 1));
    assert_eq!(skewed.shards_of(GroupId(1)).len(), 6);
    let rebalanced = tester.join(&[3]);
    assert_balanced(&rebalanced, &[1, 2, 3]);
}

// Lab "Test: Multi-group join/leave": one Join or Leave may name many groups
// and creates exactly one configuration.
#[test]
fn multi_group_join_and_leave_in_one_call() {
    let mut tester = Tester::new();
    let joined = tester.join(&[1, 2, 3, 4]);
    assert_eq!(joined.num, ConfigNum(1));
    assert_balanced(&joined, &[1, 2, 3, 4]);
    let left = tester.leave(&[4, 1]);
    assert_eq!(left.num, ConfigNum(2));
    assert_balanced(&left, &[2, 3]);
    assert_eq!(left.groups.get(&GroupId(3)), Some(&servers(3)));
}

// Lab "Test: Minimal transfers after joins": a join moves exactly the shards
// the new groups need, and only from groups above the new ceiling.
#[test]
fn join_moves_the_minimum_number_of_shards() {
    let mut tester = Tester::new();
    let before = tester.join(&[1, 2, 3]);
    let after = tester.join(&[4]);
    assert_balanced(&after, &[1, 2, 3, 4]);
    // 10 shards over 4 groups: the new group needs floor(10 / 4) = 2.
    assert_eq!(moved_count(&before, &after), 2);
    for (old, new) in before.shards.iter().zip(&after.shards) {
        assert!(
            old == new || *new == GroupId(4),
            "shard moved between old groups"
        );
    }
    let before = after;
    let after = tester.join(&[5, 6]);
    // Groups 5 and 6 need one shard each; the two groups at 3 give one each.
    assert_eq!(moved_count(&before, &after), 2);
}

// Lab "Test: Minimal transfers after leaves": a leave moves only the shards of
// the groups that left.
#[test]
fn leave_moves_only_the_shards_of_leaving_groups() {
    let mut tester = Tester::new();
    let before = tester.join(&[1, 2, 3, 4, 5]);
    let after = tester.leave(&[2, 4]);
    assert_balanced(&after, &[1, 3, 5]);
    for (old, new) in before.shards.iter().zip(&after.shards) {
        if *old != GroupId(2) && *old != GroupId(4) {
            assert_eq!(old, new, "a shard of a staying group moved");
        }
    }
    assert_eq!(moved_count(&before, &after), 4);
}

// Lab "Test: Check that idle groups are handled": with more groups than
// shards, exactly one shard per holding group, the rest idle; when a holder
// leaves, an idle group takes over its shard and nothing else moves.
#[test]
fn more_groups_than_shards_leaves_extra_groups_idle() {
    let mut tester = Tester::new();
    let gids: Vec<u64> = (1..=12).collect();
    let config = tester.join(&gids);
    assert_balanced(&config, &gids);
    let counts = config.shard_counts();
    assert_eq!(counts.values().filter(|count| **count == 1).count(), 10);
    assert_eq!(
        counts.get(&GroupId(11)),
        Some(&0),
        "lowest gids hold shards"
    );
    let before = config;
    let after = tester.leave(&[3]);
    assert_eq!(moved_count(&before, &after), 1);
    assert_eq!(after.owner(ShardId(2)), Some(GroupId(11)));
    let after_join = tester.join(&[13]);
    assert_eq!(
        moved_count(&after, &after_join),
        0,
        "a joining idle group takes nothing"
    );
}

#[test]
fn leaving_every_group_unassigns_every_shard() {
    let mut tester = Tester::new();
    tester.join(&[1, 2, 3]);
    let config = tester.leave(&[1, 2, 3]);
    assert_balanced(&config, &[]);
    let rejoined = tester.join(&[4]);
    assert_balanced(&rejoined, &[4]);
}
