//! What a group's leader does next, decided purely from its shard table
//! (DESIGN.md "Reconfiguration in a group"): which configuration to
//! propose, and which moves to drive. The I/O shells (the controller
//! watcher, the puller) ask these functions and carry out the answer.
//!
//! Invariants:
//! - The configuration proposed is always the one after the current, and
//!   only once the table has settled; the holders it carries are the last
//!   group that owned each shard whose current owner is gid 0, found in
//!   the controller's history.
//! - Every pending step of a move appears exactly once among the tasks.

use std::collections::BTreeMap;

use proto::config::{Config, ConfigNum, GroupId, ShardId};

use crate::shards::{NextConfig, ShardState, ShardTable};

/// Why the next configuration cannot be proposed yet.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NotYet {
    /// The group is still moving shards of its current configuration.
    #[error("shards of configuration {current} have not settled")]
    Unsettled {
        /// The current configuration.
        current: ConfigNum,
    },
    /// The configuration offered is not the next one.
    #[error("configuration {offered} is not the one after {current}")]
    NotNext {
        /// The current configuration.
        current: ConfigNum,
        /// The one offered.
        offered: ConfigNum,
    },
    /// An earlier configuration needed to find a shard's holder is not
    /// known (the leader asks the controller for it and tries again).
    #[error("configuration {missing} is needed to find where shard {shard} is")]
    MissingHistory {
        /// The shard.
        shard: ShardId,
        /// The configuration to fetch.
        missing: ConfigNum,
    },
}

/// Returns the entry that moves `table` to `next`: `next` with the holders
/// of the shards it gives this group that have no owner now, looked up in
/// `earlier` (configurations before the current one, by number).
///
/// # Errors
///
/// [`NotYet`] when the group has not settled, `next` is not the next
/// configuration, or `earlier` lacks a configuration needed.
pub fn plan_next(
    table: &ShardTable,
    next: Config,
    earlier: impl Fn(ConfigNum) -> Option<Config>,
) -> Result<NextConfig, NotYet> {
    let current = table.config();
    if next.num != current.num.next() {
        return Err(NotYet::NotNext {
            current: current.num,
            offered: next.num,
        });
    }
    if !table.settled() {
        return Err(NotYet::Unsettled {
            current: current.num,
        });
    }
    let mut holders = BTreeMap::new();
    for (index, owner) in next.shards.iter().enumerate() {
        let shard = ShardId(index as u32);
        let unowned_now = current.owner(shard).is_none_or(GroupId::is_unassigned);
        if *owner != table.gid() || !unowned_now || table.state(shard).is_some() {
            continue;
        }
        if let Some(holder) = last_owner(shard, current.num, &earlier)? {
            holders.insert(shard, holder);
        }
    }
    Ok(NextConfig {
        config: next,
        holders,
    })
}

/// Returns the last group that owned `shard` in a configuration before
/// `current`, or `None` if none ever did.
fn last_owner(
    shard: ShardId,
    current: ConfigNum,
    earlier: &impl Fn(ConfigNum) -> Option<Config>,
) -> Result<Option<GroupId>, NotYet> {
    for num in (1..current.0).rev().map(ConfigNum) {
        let config = earlier(num).ok_or(NotYet::MissingHistory {
            shard,
            missing: num,
        })?;
        if let Some(owner) = config.owner(shard).filter(|gid| !gid.is_unassigned()) {
            return Ok(Some(owner));
        }
    }
    Ok(None)
}

/// One step of a move the leader drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MoveTask {
    /// Pull `shard` from `from` as of configuration `num`, and install it.
    Pull {
        /// The shard.
        shard: ShardId,
        /// Its holder.
        from: GroupId,
        /// The configuration of the move.
        num: ConfigNum,
    },
    /// Ask `from` to delete its copy of `shard` (move `num`), then record
    /// that it did.
    Clean {
        /// The shard.
        shard: ShardId,
        /// The previous holder.
        from: GroupId,
        /// The configuration of the move.
        num: ConfigNum,
    },
}

/// Returns every step of a move the table waits on, by shard.
pub fn move_tasks(table: &ShardTable) -> Vec<MoveTask> {
    let num = table.config().num;
    table
        .states()
        .filter_map(|(shard, state)| match state {
            ShardState::Pulling { from } => Some(MoveTask::Pull { shard, from, num }),
            ShardState::Cleaning { from } => Some(MoveTask::Clean { shard, from, num }),
            ShardState::Serving | ShardState::Sending { .. } => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(num: u64, owners: [u64; 2]) -> Config {
        let shards: Vec<GroupId> = owners.iter().map(|&gid| GroupId(gid)).collect();
        let groups = shards
            .iter()
            .filter(|gid| !gid.is_unassigned())
            .map(|gid| (*gid, vec!["h:1".to_string()]))
            .collect();
        Config {
            num: ConfigNum(num),
            shards,
            groups,
        }
    }

    fn apply(table: &mut ShardTable, history: &[Config], next: Config) {
        let lookup = |num: ConfigNum| history.get(num.0 as usize).cloned();
        let planned = plan_next(table, next, lookup).expect("planned");
        table.apply_config(&planned).expect("applies");
    }

    // Goal: the next configuration is planned only in order and once
    // settled; the holder of a shard nobody owns now is the last owner in
    // the history, and a missing configuration is asked for.
    #[test]
    fn the_next_configuration_carries_the_holders_of_unowned_shards() {
        let history = vec![
            Config::initial(2),
            config(1, [1, 1]),
            config(2, [0, 0]),
            config(3, [0, 0]),
        ];
        let mut two = ShardTable::new(GroupId(2), 2);
        for next in history.iter().skip(1) {
            apply(&mut two, &history, next.clone());
        }
        let none = |_: ConfigNum| None;
        let skipped = plan_next(&two, config(5, [2, 2]), none);
        assert!(matches!(skipped, Err(NotYet::NotNext { .. })));
        let missing = plan_next(&two, config(4, [2, 1]), none);
        assert!(matches!(missing, Err(NotYet::MissingHistory { .. })));
        let lookup = |num: ConfigNum| history.get(num.0 as usize).cloned();
        let planned = plan_next(&two, config(4, [2, 1]), lookup).expect("planned");
        assert_eq!(planned.holders, BTreeMap::from([(ShardId(0), GroupId(1))]));
        two.apply_config(&planned).expect("applies");
        assert_eq!(
            move_tasks(&two),
            vec![MoveTask::Pull {
                shard: ShardId(0),
                from: GroupId(1),
                num: ConfigNum(4)
            }]
        );
        let unsettled = plan_next(&two, config(5, [2, 2]), lookup);
        assert!(matches!(unsettled, Err(NotYet::Unsettled { .. })));
        assert!(two.installed(ShardId(0), ConfigNum(4)));
        assert_eq!(
            move_tasks(&two),
            vec![MoveTask::Clean {
                shard: ShardId(0),
                from: GroupId(1),
                num: ConfigNum(4)
            }]
        );
    }
}
