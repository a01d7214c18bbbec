//! Property tests of rebalancing and of the state machine over random
//! sequences of join, leave, move and retries (DESIGN.md, "Sharding and
//! configurations").
//!
//! Goal: balance, minimal movement, validity and determinism hold for every
//! input, not just the hand-picked ones of the unit tests. Method: proptest
//! generates shard tables and group sets, or whole admin sequences, and each
//! property is checked against an independent computation: the least number
//! of moves any balanced assignment needs, in closed form (cross-checked by
//! brute force on small inputs).

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{Driver, group_ids, sequence_strategy};
use proptest::prelude::*;
use shardctrler::rebalance_check::{self, moved_count, optimal_moves};
use shardctrler::{Command, ControllerState, GroupId, rebalance};

/// Returns the least number of moves by trying every assignment whose loads
/// are within one of each other. Exponential: small inputs only.
fn brute_force_moves(shards: &[GroupId], groups: &BTreeSet<GroupId>) -> usize {
    let gids: Vec<GroupId> = groups.iter().copied().collect();
    let mut best = usize::MAX;
    let mut assignment = vec![0usize; shards.len()];
    loop {
        let mut loads = vec![0usize; gids.len()];
        assignment.iter().for_each(|group| loads[*group] += 1);
        let (max, min) = (loads.iter().max(), loads.iter().min());
        if max.zip(min).is_none_or(|(max, min)| max - min <= 1) {
            let moves = (0..shards.len())
                .filter(|shard| shards[*shard] != gids[assignment[*shard]])
                .count();
            best = best.min(moves);
        }
        // Advance `assignment` as a base-G counter; stop after the last one.
        let Some(digit) = assignment.iter().position(|group| group + 1 < gids.len()) else {
            return best;
        };
        assignment[digit] += 1;
        assignment[..digit].iter_mut().for_each(|group| *group = 0);
    }
}

/// Returns a shard table over gids 0..=15 and a set of groups from 1..=15.
fn table_and_groups(
    shard_count_max: usize,
    group_count_max: usize,
) -> impl Strategy<Value = (Vec<GroupId>, BTreeSet<GroupId>)> {
    let table = proptest::collection::vec((0u64..=15).prop_map(GroupId), 0..=shard_count_max);
    let groups =
        proptest::collection::btree_set((1u64..=15).prop_map(GroupId), 0..=group_count_max);
    (table, groups)
}

/// Asserts balance and validity of `after`, and minimal, necessary movement
/// from `before`.
fn check_rebalanced(before: &[GroupId], after: &[GroupId], groups: &BTreeSet<GroupId>) {
    if let Err(why) = rebalance_check::check_rebalanced(before, after, groups) {
        panic!("{why}");
    }
}

proptest! {
    // The closed form of the optimum agrees with exhaustive search.
    #[test]
    fn optimal_moves_matches_brute_force((shards, groups) in table_and_groups(6, 4)) {
        prop_assume!(!groups.is_empty());
        prop_assert_eq!(optimal_moves(&shards, &groups), brute_force_moves(&shards, &groups));
    }

    // Balance, validity, minimality, determinism and idempotence of
    // `rebalance` on arbitrary tables, including gids that are not groups.
    #[test]
    fn rebalance_is_balanced_minimal_and_deterministic((shards, groups) in table_and_groups(20, 15)) {
        let after = rebalance(&shards, &groups);
        check_rebalanced(&shards, &after, &groups);
        prop_assert_eq!(&rebalance(&shards, &groups), &after);
        prop_assert_eq!(rebalance(&after, &groups), after);
    }

    // Over random admin sequences: every Join or Leave yields a balanced,
    // minimally moved configuration; Move changes one shard; refusals change
    // nothing; retries get their first reply; invariants hold throughout.
    #[test]
    fn state_machine_sequences_keep_every_property((shard_count, ops) in sequence_strategy()) {
        let mut state = ControllerState::new(shard_count);
        let mut driver = Driver::default();
        let mut replies = BTreeMap::new();
        for op in &ops {
            let Some(request) = driver.request(op, state.latest()) else { continue };
            let key = (request.client_id, request.seq);
            let command = request.command.clone();
            let before = state.clone();
            let outcome = state.apply(request);
            state.check_invariants().map_err(TestCaseError::fail)?;
            if let Some(first) = replies.get(&key) {
                prop_assert_eq!(&outcome, first, "a retry must get the first reply");
                prop_assert_eq!(&state, &before, "a retry must change nothing");
                continue;
            }
            replies.insert(key, outcome.clone());
            check_step(&before, &state, &command, outcome.is_ok())?;
        }
    }

    // The same sequence applied to two fresh states gives identical
    // histories, sessions and snapshot bytes.
    #[test]
    fn state_machine_is_deterministic((shard_count, ops) in sequence_strategy()) {
        let first = common::run(shard_count, &ops);
        let second = common::run(shard_count, &ops);
        prop_assert_eq!(first.history(), second.history());
        prop_assert_eq!(first.encode_snapshot(), second.encode_snapshot());
        prop_assert_eq!(first, second);
    }
}

/// Checks one executed (not retried) step from `before` to `after`.
fn check_step(
    before: &ControllerState,
    after: &ControllerState,
    command: &Command,
    succeeded: bool,
) -> Result<(), TestCaseError> {
    if !succeeded {
        prop_assert_eq!(
            before.history(),
            after.history(),
            "a refusal must change nothing"
        );
        return Ok(());
    }
    let (old, new) = (before.latest(), after.latest());
    prop_assert_eq!(new.num, old.num.next());
    prop_assert_eq!(after.history().len(), before.history().len() + 1);
    match command {
        Command::Move { shard, gid } => {
            prop_assert_eq!(new.owner(*shard), Some(*gid));
            prop_assert!(moved_count(&old.shards, &new.shards) <= 1);
            prop_assert_eq!(&new.groups, &old.groups);
        }
        Command::Join { .. } | Command::Leave { .. } => {
            check_rebalanced(&old.shards, &new.shards, &group_ids(new));
        }
    }
    Ok(())
}
