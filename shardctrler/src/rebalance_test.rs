//! Unit tests of [`rebalance`]: fixed cases whose expected tables are worked
//! out by hand from the rules in the module documentation. Random inputs are
//! covered by `tests/rebalance_props.rs`.

use std::collections::{BTreeMap, BTreeSet};

use super::{rebalance, shard_targets};
use crate::types::GroupId;

fn gids(ids: &[u64]) -> Vec<GroupId> {
    ids.iter().map(|id| GroupId(*id)).collect()
}

fn group_set(ids: &[u64]) -> BTreeSet<GroupId> {
    ids.iter().map(|id| GroupId(*id)).collect()
}

fn moved(before: &[GroupId], after: &[GroupId]) -> usize {
    before.iter().zip(after).filter(|(a, b)| a != b).count()
}

// With no groups every shard goes back to gid 0.
#[test]
fn no_groups_unassigns_every_shard() {
    let result = rebalance(&gids(&[1, 2, 1]), &BTreeSet::new());
    assert_eq!(result, gids(&[0, 0, 0]));
}

// The first join spreads shards evenly; the extra shard goes to the lowest
// gid because every group holds zero.
#[test]
fn first_join_spreads_evenly_with_extra_on_lowest_gid() {
    let result = rebalance(&gids(&[0; 10]), &group_set(&[3, 1, 2]));
    assert_eq!(result, gids(&[1, 1, 1, 1, 2, 2, 2, 3, 3, 3]));
}

// Joining a fourth group to 4/3/3 moves exactly two shards: one from the
// group above the new ceiling and one from a group that loses the extra.
#[test]
fn join_moves_only_what_the_new_group_needs() {
    let before = gids(&[1, 1, 1, 1, 2, 2, 2, 3, 3, 3]);
    let after = rebalance(&before, &group_set(&[1, 2, 3, 4]));
    assert_eq!(moved(&before, &after), 2);
    assert_eq!(after, gids(&[1, 1, 1, 4, 2, 2, 2, 3, 3, 4]));
}

// Leaving moves exactly the shards of the group that left.
#[test]
fn leave_moves_only_the_shards_of_the_leaving_group() {
    let before = gids(&[1, 1, 1, 4, 2, 2, 2, 3, 3, 4]);
    let after = rebalance(&before, &group_set(&[2, 3, 4]));
    assert_eq!(moved(&before, &after), 3);
    for (old, new) in before.iter().zip(&after) {
        if *old != GroupId(1) {
            assert_eq!(old, new, "a shard of a staying group moved");
        }
    }
}

// An already balanced table is a fixed point.
#[test]
fn balanced_table_is_unchanged() {
    let before = gids(&[2, 1, 2, 1, 3]);
    assert_eq!(rebalance(&before, &group_set(&[1, 2, 3])), before);
}

// More groups than shards: the groups already holding a shard keep it, and
// the rest of the shards go to the lowest gids.
#[test]
fn more_groups_than_shards_prefers_holders_then_lowest_gid() {
    let before = gids(&[9, 0, 0]);
    let after = rebalance(&before, &group_set(&[1, 2, 5, 9]));
    assert_eq!(after, gids(&[9, 1, 2]));
}

// A group that holds two of three shards among four groups keeps one of them.
#[test]
fn more_groups_than_shards_takes_surplus_from_the_holder() {
    let before = gids(&[7, 7, 0]);
    let after = rebalance(&before, &group_set(&[1, 2, 3, 7]));
    assert_eq!(after, gids(&[7, 1, 2]));
}

// After a Move unbalances the table, a rebalance takes the surplus from the
// overloaded group and leaves everyone else alone.
#[test]
fn rebalance_after_move_takes_surplus_from_overloaded_group() {
    let before = gids(&[1, 1, 1, 1, 2]);
    let after = rebalance(&before, &group_set(&[1, 2]));
    assert_eq!(after, gids(&[1, 1, 1, 2, 2]));
}

// The extra shards go to the groups holding the most, not the lowest gids.
#[test]
fn targets_give_extras_to_the_most_loaded_groups() {
    let counts: BTreeMap<GroupId, usize> = [
        (GroupId(1), 1),
        (GroupId(2), 4),
        (GroupId(3), 4),
        (GroupId(4), 1),
    ]
    .into();
    let targets = shard_targets(10, &counts);
    let expected: BTreeMap<GroupId, usize> = [
        (GroupId(1), 2),
        (GroupId(2), 3),
        (GroupId(3), 3),
        (GroupId(4), 2),
    ]
    .into();
    assert_eq!(targets, expected);
}

#[test]
fn zero_shards_rebalance_to_an_empty_table() {
    assert!(rebalance(&[], &group_set(&[1, 2])).is_empty());
}

#[test]
#[should_panic(expected = "gid 0 is reserved")]
fn gid_zero_in_groups_is_a_caller_bug() {
    let _ = rebalance(&gids(&[0]), &group_set(&[0, 1]));
}
