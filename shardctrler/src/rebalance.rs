//! Deterministic, minimal-movement rebalancing of shards over groups
//! (DESIGN.md, "Sharding and configurations"; docs/shardctrler.md).
//!
//! This module owns one pure function, [`rebalance`]. Every controller
//! replica runs it on the same input inside `apply`, so it must give the same
//! answer everywhere: it uses only ordered collections (`BTreeMap`,
//! `BTreeSet`) and slices, never a `HashMap` or anything random.
//!
//! With `S` shards and `G > 0` groups the result keeps these invariants:
//!
//! - Every shard is on a group of `groups`; with no groups every shard is on
//!   gid 0.
//! - Balance: each group holds `S / G` or `S / G + 1` shards, so the most and
//!   least loaded groups differ by at most one. When `G > S` exactly `S`
//!   groups hold one shard and the rest hold none.
//! - Minimal movement: a shard moves only if its gid is not in `groups` (gid 0
//!   or a group that left) or its group holds more than its target; the number
//!   of moved shards is the least any balanced assignment allows.
//!
//! Targets: every group gets `S / G`; the `S % G` extra shards go to the
//! groups currently holding the most shards, ties broken by the lowest gid.
//! Giving an extra to a group that is already above `S / G` saves one move,
//! giving it to any other group saves none, which is why this choice is
//! minimal. For `G > S` it means the groups that already hold a shard keep
//! one, then the lowest gids get one.
//!
//! Which shards move: an over-target group keeps its lowest-numbered shards
//! and releases the rest; released shards, in ascending shard order, fill the
//! under-target groups in ascending gid order.

use std::collections::{BTreeMap, BTreeSet};

use crate::types::GroupId;

/// Returns a new shard table in which every shard is owned by a group of
/// `groups` (or by gid 0 if `groups` is empty), balanced to within one shard
/// and moving as few shards of `shards` as balance allows.
///
/// `shards[i]` is the current owner of shard `i`; gid 0 and gids not in
/// `groups` count as unowned. The result has the same length as `shards`.
/// The function is pure and deterministic.
///
/// # Panics
///
/// Panics if `groups` contains gid 0, which is never a group: that is a bug
/// in the caller, which validates admin input before calling.
pub fn rebalance(shards: &[GroupId], groups: &BTreeSet<GroupId>) -> Vec<GroupId> {
    assert!(
        !groups.contains(&GroupId::UNASSIGNED),
        "gid 0 is reserved and never a group"
    );
    if groups.is_empty() {
        return vec![GroupId::UNASSIGNED; shards.len()];
    }
    let counts = current_counts(shards, groups);
    let targets = shard_targets(shards.len(), &counts);
    let mut result = shards.to_vec();
    let (released, kept) = release_surplus(&mut result, &targets);
    assign_released(&mut result, released, &kept, &targets);
    debug_assert!(result.iter().all(|gid| groups.contains(gid)));
    result
}

/// Returns how many shards each group of `groups` holds now, zero included.
fn current_counts(shards: &[GroupId], groups: &BTreeSet<GroupId>) -> BTreeMap<GroupId, usize> {
    let mut counts: BTreeMap<GroupId, usize> = groups.iter().map(|gid| (*gid, 0)).collect();
    for gid in shards {
        if let Some(count) = counts.get_mut(gid) {
            *count += 1;
        }
    }
    counts
}

/// Returns the number of shards each group should hold: `shard_count / G`
/// each, plus one for the `shard_count % G` groups holding the most shards
/// now (ties by lowest gid). The targets sum to `shard_count`.
fn shard_targets(
    shard_count: usize,
    counts: &BTreeMap<GroupId, usize>,
) -> BTreeMap<GroupId, usize> {
    let group_count = counts.len();
    assert!(group_count > 0, "targets need at least one group");
    let base = shard_count / group_count;
    let extra = shard_count % group_count;
    let mut by_load: Vec<(GroupId, usize)> = counts.iter().map(|(gid, n)| (*gid, *n)).collect();
    // Most loaded first; the BTreeMap order already gives lowest gid first and
    // the sort is stable, but the explicit key documents the tie-break.
    by_load
        .sort_by(|(gid_a, count_a), (gid_b, count_b)| count_b.cmp(count_a).then(gid_a.cmp(gid_b)));
    by_load
        .into_iter()
        .enumerate()
        .map(|(rank, (gid, _))| (gid, base + usize::from(rank < extra)))
        .collect()
}

/// Sets every shard that must move to gid 0 and returns, in ascending order,
/// the indices of those shards, together with how many shards each group
/// kept. A shard must move when its gid has no target (gid 0 or a group not
/// in the new set) or its group already kept its target of lower shards.
fn release_surplus(
    shards: &mut [GroupId],
    targets: &BTreeMap<GroupId, usize>,
) -> (Vec<usize>, BTreeMap<GroupId, usize>) {
    let mut kept: BTreeMap<GroupId, usize> = targets.keys().map(|gid| (*gid, 0)).collect();
    let mut released = Vec::new();
    for (index, gid) in shards.iter_mut().enumerate() {
        let target = targets.get(gid).copied().unwrap_or(0);
        match kept.get_mut(gid) {
            Some(count) if *count < target => *count += 1,
            _ => {
                *gid = GroupId::UNASSIGNED;
                released.push(index);
            }
        }
    }
    (released, kept)
}

/// Gives the released shards, in ascending shard order, to the groups below
/// their target, in ascending gid order, until every group reaches it.
fn assign_released(
    shards: &mut [GroupId],
    released: Vec<usize>,
    kept: &BTreeMap<GroupId, usize>,
    targets: &BTreeMap<GroupId, usize>,
) {
    let mut released = released.into_iter();
    for (gid, target) in targets {
        let have = kept.get(gid).copied().unwrap_or(0);
        for _ in have..*target {
            let index = released
                .next()
                .expect("targets sum to the shard count, so released shards cover every deficit");
            shards[index] = *gid;
        }
    }
    assert!(
        released.next().is_none(),
        "every released shard must find a group below its target"
    );
}

#[cfg(test)]
#[path = "rebalance_test.rs"]
mod tests;
