//! The judge of a rebalance, independent of how [`rebalance`](crate::rebalance)
//! computes it: the property tests and the controller's simulation both
//! check every Join and Leave against it.
//!
//! It checks the invariants `rebalance.rs` promises: every shard on a group
//! (gid 0 when there is none), loads within one of each other, exactly the
//! least number of moves any balanced assignment allows ([`optimal_moves`],
//! a closed form the property tests compare with exhaustive search), and no
//! move out of a group that did not shrink.

use std::collections::{BTreeMap, BTreeSet};

use crate::types::GroupId;

/// Returns the number of shards whose owner differs between two tables.
pub fn moved_count(before: &[GroupId], after: &[GroupId]) -> usize {
    before
        .iter()
        .zip(after)
        .filter(|(old, new)| old != new)
        .count()
}

/// Returns the least number of shards any assignment of `shards` over
/// `groups` with loads within one of each other must move.
///
/// Every shard on a gid outside `groups` must move. With `S` shards over `G`
/// groups, each group ends with `S / G` or `S / G + 1`, and exactly `S % G`
/// get the `+ 1`; a group holding `c` must give up `c - target` if positive.
/// Giving a `+ 1` to a group above `S / G` saves one move, and to any other
/// group none, so the best is to give them to as many such groups as there
/// are.
pub fn optimal_moves(shards: &[GroupId], groups: &BTreeSet<GroupId>) -> usize {
    if groups.is_empty() {
        return shards.iter().filter(|gid| !gid.is_unassigned()).count();
    }
    let invalid = shards.iter().filter(|gid| !groups.contains(gid)).count();
    let base = shards.len() / groups.len();
    let extra = shards.len() % groups.len();
    let counts = groups
        .iter()
        .map(|group| shards.iter().filter(|gid| *gid == group).count());
    let over_base: Vec<usize> = counts.filter(|count| *count > base).collect();
    let excess: usize = over_base.iter().map(|count| count - base).sum();
    invalid + excess - extra.min(over_base.len())
}

/// Checks that `after` is a valid, balanced and minimally moved
/// rebalance of `before` over `groups`; returns what is wrong otherwise.
pub fn check_rebalanced(
    before: &[GroupId],
    after: &[GroupId],
    groups: &BTreeSet<GroupId>,
) -> Result<(), String> {
    if after.len() != before.len() {
        return Err(format!("{} shards became {}", before.len(), after.len()));
    }
    if groups.is_empty() {
        return match after.iter().all(|gid| gid.is_unassigned()) {
            true => Ok(()),
            false => Err(format!("no groups, yet shards are assigned: {after:?}")),
        };
    }
    if let Some(gid) = after.iter().find(|gid| !groups.contains(gid)) {
        return Err(format!("a shard is on {gid}, not a group: {after:?}"));
    }
    let load =
        |table: &[GroupId], group: &GroupId| table.iter().filter(|gid| *gid == group).count();
    let loads: BTreeMap<GroupId, usize> = groups.iter().map(|g| (*g, load(after, g))).collect();
    let max = loads.values().max().copied().unwrap_or(0);
    let min = loads.values().min().copied().unwrap_or(0);
    if max - min > 1 {
        return Err(format!("unbalanced: {loads:?}"));
    }
    if groups.len() > before.len() {
        let holders = loads.values().filter(|count| **count == 1).count();
        if holders != before.len() {
            return Err(format!("{holders} groups hold a shard, not one per shard"));
        }
        if let Some(group) = groups
            .iter()
            .find(|group| load(before, group) > 0 && loads[*group] != 1)
        {
            return Err(format!("holder {group} lost its shard"));
        }
    }
    let (moved, optimal) = (moved_count(before, after), optimal_moves(before, groups));
    if moved != optimal {
        return Err(format!(
            "{moved} shards moved where {optimal} suffice: {before:?} -> {after:?}"
        ));
    }
    for (old, new) in before.iter().zip(after) {
        let shrank = groups.contains(old) && loads[old] < load(before, old);
        if old != new && groups.contains(old) && !shrank {
            return Err(format!("needless move from {old}: {before:?} -> {after:?}"));
        }
    }
    Ok(())
}
