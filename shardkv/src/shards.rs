//! The shards one replica group holds and the states they move through
//! (DESIGN.md "Reconfiguration in a group"; docs/shardkv.md): a pure table
//! every replica of the group changes at the same entries of its log.
//!
//! A shard the group holds is in one state:
//! - `Serving`: its data is here and the current configuration gives it to
//!   this group;
//! - `Pulling { from }`: the current configuration gives it to this group,
//!   its data is still at group `from`;
//! - `Sending { to }`: the current configuration gives it to `to`; its
//!   data stays here until its new owner has installed it and asks for its
//!   deletion. With `to` gid 0 (every group left) the shard is *parked*:
//!   nobody owns it, the data waits here for the next owner, and the group
//!   may move on to later configurations meanwhile;
//! - `Cleaning { from }`: installed here from `from`, which has not yet
//!   confirmed the deletion of its copy. The data is here, so it serves:
//!   the new owner's copy is the one clients reach from now on, and the
//!   old copy is no longer served by anyone (its holder is `Sending`).
//!
//! Invariants:
//! - A configuration applies only on top of the one before it
//!   (`num + 1`) and only when every shard has settled (`Serving`, or
//!   parked): a group never holds obligations (a pull, a deletion to wait
//!   for or to request) of two configurations at once.
//! - A request for a shard is served only in `Serving` or `Cleaning`, and
//!   only by the group the current configuration gives it to.
//! - A shard gained from another group is never served before its data is
//!   installed; a shard nobody ever held starts empty and serves at once.

use std::collections::BTreeMap;

use proto::config::{Config, ConfigNum, GroupId, ShardId};

/// The state of one shard the group holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShardState {
    /// Here, and served.
    Serving,
    /// Given to this group; the data is still at `from`.
    Pulling {
        /// The group that holds the data.
        from: GroupId,
    },
    /// Given to `to`; kept until `to` installed it and asked to delete it.
    Sending {
        /// The new owner (gid 0: no group is left to own it).
        to: GroupId,
    },
    /// Installed from `from`, which must still be told to delete its copy.
    Cleaning {
        /// The previous holder.
        from: GroupId,
    },
}

impl ShardState {
    /// Returns whether requests for the shard are served here (the data is
    /// here and the shard is this group's).
    pub fn serves(self) -> bool {
        matches!(self, ShardState::Serving | ShardState::Cleaning { .. })
    }

    /// Returns whether the shard leaves the group nothing to do before the
    /// next configuration: `Serving`, or parked (`Sending` to gid 0).
    pub fn settled(self) -> bool {
        match self {
            ShardState::Serving => true,
            ShardState::Sending { to } => to.is_unassigned(),
            ShardState::Pulling { .. } | ShardState::Cleaning { .. } => false,
        }
    }

    /// Returns the name used in metrics and status output.
    pub fn name(self) -> &'static str {
        match self {
            ShardState::Serving => "serving",
            ShardState::Pulling { .. } => "pulling",
            ShardState::Sending { .. } => "sending",
            ShardState::Cleaning { .. } => "cleaning",
        }
    }
}

/// The next configuration as the group's log carries it: the
/// configuration, and for each shard it gives this group whose owner in
/// the current configuration is gid 0 (every group had left), the group
/// that still holds its data, as the leader found it in the controller's
/// history. Every replica applies the same entry, so none looks anything
/// up itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NextConfig {
    /// The configuration to move to.
    pub config: Config,
    /// Holders of the data of shards that had no owner in the current
    /// configuration; a shard missing here was never held by anyone.
    pub holders: BTreeMap<ShardId, GroupId>,
}

/// Why a request for a shard is not served here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotServed {
    /// The current configuration gives the shard to another group: the
    /// client refreshes its configuration (`WRONG_GROUP`).
    WrongGroup,
    /// The shard is this group's but its data has not arrived
    /// (`SHARD_NOT_READY`: the client retries).
    NotReady,
}

/// Why a configuration cannot apply now.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigRefused {
    /// It does not follow the current configuration.
    #[error("configuration {offered} does not follow configuration {current}")]
    OutOfOrder {
        /// The current configuration's number.
        current: ConfigNum,
        /// The offered one's.
        offered: ConfigNum,
    },
    /// A shard of the current configuration has not settled.
    #[error("shard {shard} is still {state} in configuration {current}")]
    NotSettled {
        /// The current configuration's number.
        current: ConfigNum,
        /// A shard that is not `Serving`.
        shard: ShardId,
        /// Its state's name.
        state: &'static str,
    },
    /// Its shard table has another length.
    #[error("configuration {offered} has {found} shards, the cluster has {expected}")]
    ShardCount {
        /// The offered configuration's number.
        offered: ConfigNum,
        /// Its shard count.
        found: usize,
        /// The cluster's.
        expected: usize,
    },
}

/// The shards one group holds, with the configuration they are in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardTable {
    gid: GroupId,
    config: Config,
    /// Invariant: only shards the group holds; see the module doc.
    states: BTreeMap<ShardId, ShardState>,
}

impl ShardTable {
    /// Returns the table of group `gid` before any configuration: the
    /// initial configuration of `shard_count` shards, holding none.
    pub fn new(gid: GroupId, shard_count: u32) -> ShardTable {
        ShardTable {
            gid,
            config: Config::initial(shard_count),
            states: BTreeMap::new(),
        }
    }

    /// Returns the table of group `gid` in `config` holding `states`, as a
    /// store read them back.
    ///
    /// # Errors
    ///
    /// A description of the first state that names a shard outside the
    /// configuration.
    pub fn from_parts(
        gid: GroupId,
        config: Config,
        states: BTreeMap<ShardId, ShardState>,
    ) -> Result<ShardTable, String> {
        if let Some(shard) = states
            .keys()
            .find(|shard| shard.0 as usize >= config.shard_count())
        {
            return Err(format!(
                "shard {shard} is outside configuration {} of {} shards",
                config.num,
                config.shard_count()
            ));
        }
        Ok(ShardTable {
            gid,
            config,
            states,
        })
    }

    /// Returns the group's id.
    pub fn gid(&self) -> GroupId {
        self.gid
    }

    /// Returns the current configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Returns the state of `shard`, if the group holds it.
    pub fn state(&self, shard: ShardId) -> Option<ShardState> {
        self.states.get(&shard).copied()
    }

    /// Returns every shard the group holds, with its state.
    pub fn states(&self) -> impl Iterator<Item = (ShardId, ShardState)> + '_ {
        self.states.iter().map(|(shard, state)| (*shard, *state))
    }

    /// Returns the shards being pulled into the group (`Pulling`).
    pub fn pulling(&self) -> impl Iterator<Item = ShardId> + '_ {
        self.states()
            .filter(|(_, state)| matches!(state, ShardState::Pulling { .. }))
            .map(|(shard, _)| shard)
    }

    /// Returns whether every shard has settled (`Serving`, or parked):
    /// the next configuration may apply.
    pub fn settled(&self) -> bool {
        self.states.values().all(|state| state.settled())
    }

    /// Returns whether a request for `shard` is served here, or why not.
    pub fn route(&self, shard: ShardId) -> Result<(), NotServed> {
        if self.config.owner(shard) != Some(self.gid) {
            return Err(NotServed::WrongGroup);
        }
        match self.state(shard) {
            Some(state) if state.serves() => Ok(()),
            _ => Err(NotServed::NotReady),
        }
    }

    /// Moves to `next`: shards kept stay `Serving`; a shard gained is
    /// `Pulling` from the group holding it, or `Serving` (empty) if no
    /// group ever held it; a shard lost is `Sending` to its new owner.
    ///
    /// # Errors
    ///
    /// [`ConfigRefused`] if `next` does not follow the current
    /// configuration, a shard has not settled, or the shard count differs;
    /// nothing changes then.
    pub fn apply_config(&mut self, next: &NextConfig) -> Result<(), ConfigRefused> {
        let (current, offered) = (self.config.num, next.config.num);
        if offered != current.next() {
            return Err(ConfigRefused::OutOfOrder { current, offered });
        }
        if next.config.shard_count() != self.config.shard_count() {
            return Err(ConfigRefused::ShardCount {
                offered,
                found: next.config.shard_count(),
                expected: self.config.shard_count(),
            });
        }
        if let Some((&shard, state)) = self.states.iter().find(|(_, state)| !state.settled()) {
            return Err(ConfigRefused::NotSettled {
                current,
                shard,
                state: state.name(),
            });
        }
        let gid = self.gid;
        let owners = self.config.shards.iter().zip(&next.config.shards);
        for (index, (&before, &after)) in owners.enumerate() {
            let shard = ShardId(index as u32);
            let state = match self.state(shard) {
                // Kept, or a parked shard given back: the data is here.
                Some(_) if after == gid => ShardState::Serving,
                // Lost, or a parked shard given to a group at last.
                Some(_) => ShardState::Sending { to: after },
                None if after == gid => {
                    let holder = match before.is_unassigned() {
                        true => next.holders.get(&shard).copied(),
                        false => Some(before),
                    };
                    match holder {
                        Some(from) if from != gid => ShardState::Pulling { from },
                        _ => ShardState::Serving,
                    }
                }
                None => continue,
            };
            self.states.insert(shard, state);
        }
        self.config = next.config.clone();
        Ok(())
    }

    /// Records that `shard`'s data, pulled as of configuration `num`, is
    /// installed: `Pulling` becomes `Cleaning`. Returns false (changing
    /// nothing) for a stale or repeated install.
    pub fn installed(&mut self, shard: ShardId, num: ConfigNum) -> bool {
        match self.states.get_mut(&shard) {
            Some(state @ ShardState::Pulling { .. }) if num == self.config.num => {
                let ShardState::Pulling { from } = *state else {
                    unreachable!("matched above");
                };
                *state = ShardState::Cleaning { from };
                true
            }
            _ => false,
        }
    }

    /// Records that `to`, the new owner of `shard`, installed it as of
    /// configuration `num` and asked for its deletion: the `Sending` shard
    /// is dropped. Returns whether it was (a repeated, stale or misdirected
    /// request changes nothing; the caller deletes the data only then).
    pub fn handed_over(&mut self, shard: ShardId, to: GroupId, num: ConfigNum) -> bool {
        let sending = self.states.get(&shard) == Some(&ShardState::Sending { to });
        if sending && !to.is_unassigned() && num == self.config.num {
            self.states.remove(&shard);
            return true;
        }
        false
    }

    /// Returns whether this holder may send `shard` to `to` for the move
    /// of configuration `num`: the shard is `Sending` to `to` and the table
    /// is at `num`, so the shard is frozen and chunks read at different
    /// times fit together.
    pub fn sends(&self, shard: ShardId, to: GroupId, num: ConfigNum) -> bool {
        self.state(shard) == Some(ShardState::Sending { to }) && self.config.num == num
    }

    /// Returns whether this holder's copy of `shard` for the move of
    /// configuration `num` is gone: the table is past `num` (it could not
    /// have left `num` while still `Sending` the shard, so the hand-over
    /// applied, even if a later configuration gave the shard back), or at
    /// `num` without the shard.
    pub fn handed_over_since(&self, shard: ShardId, num: ConfigNum) -> bool {
        self.config.num > num || (self.config.num == num && self.state(shard).is_none())
    }

    /// Records that the previous holder of `shard` confirmed deleting its
    /// copy as of configuration `num`: `Cleaning` becomes `Serving`.
    /// Returns false (changing nothing) for a stale or repeated one.
    pub fn cleaned(&mut self, shard: ShardId, num: ConfigNum) -> bool {
        match self.states.get_mut(&shard) {
            Some(state @ ShardState::Cleaning { .. }) if num == self.config.num => {
                *state = ShardState::Serving;
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
#[path = "shards_test.rs"]
mod tests;
