//! The controller's replicated state machine (DESIGN.md, "Sharding and
//! configurations"; docs/shardctrler.md).
//!
//! This module owns [`ControllerState`]: the history of configurations and
//! the client sessions, and the pure, deterministic [`ControllerState::apply`]
//! that every replica runs on each committed [`Request`] in log order.
//!
//! Invariants (checked by [`ControllerState::check_invariants`], which
//! snapshot decoding runs):
//!
//! - The history is never empty, `history[i].num == i`, and `history[0]` is
//!   `Config::initial(shard_count)`. Configurations are never changed or
//!   dropped once appended.
//! - Every configuration keeps the invariants listed in `types.rs`, and one
//!   made by Join or Leave is balanced (see `rebalance.rs`).
//! - A session exists only for a non-zero client id, holds a non-zero
//!   `last_seq`, and a recorded success names a configuration of the history.
//! - At most once: a request whose `seq` equals its client's `last_seq` gets
//!   the recorded reply and changes nothing but the session's last use; an
//!   older one is refused as stale and changes nothing.
//! - Sessions expire: before each request, sessions unused for longer than
//!   `SESSION_TTL_MS` at the request's logged time (the leader's clock when
//!   it proposed it) are removed, so every replica drops the same ones at
//!   the same index.
//! - Validation precedes change: a refused request leaves the history as it
//!   was; only its session records the refusal, so a retry gets the same
//!   answer.

use std::collections::{BTreeMap, BTreeSet};

use raft::session::{SESSION_TTL_MS, SessionCheck, SessionTable};

use crate::address::{duplicate_key, is_valid_server_address, shortened};
use crate::command::{Command, Request};
use crate::error::{AdminError, DecodeError};
use crate::rebalance::rebalance;
use crate::types::{Config, ConfigNum, GroupId, ShardId};

/// What applying one logged request did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedRequest {
    /// The configuration it created, or why it was refused.
    pub reply: Result<Config, AdminError>,
    /// The clients whose sessions expired before it ran.
    pub expired: Vec<u64>,
}

/// The reply recorded for a client's last request: the number of the
/// configuration it created, or why it was refused. A number is enough
/// because configurations never change once created.
pub type RecordedReply = Result<ConfigNum, AdminError>;

/// What the controller remembers about one client: its last executed request,
/// the reply that request got, and when the session was last used.
pub type Session = raft::session::Session<RecordedReply>;

/// The history of configurations and the client sessions of one controller
/// replica. Every replica that applies the same requests in the same order
/// holds an equal state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerState {
    /// Invariant: fixed at bootstrap; the length of every `shards` table.
    shard_count: u32,
    /// Invariant: non-empty, `history[i].num == i`, append-only.
    history: Vec<Config>,
    /// Invariant: client ids non-zero; see [`Session`]. One scope: the
    /// controller's sessions never move.
    sessions: SessionTable<(), RecordedReply>,
}

impl ControllerState {
    /// Returns the bootstrap state: only configuration 0, with `shard_count`
    /// shards all on gid 0, and no sessions.
    pub fn new(shard_count: u32) -> ControllerState {
        ControllerState {
            shard_count,
            history: vec![Config::initial(shard_count)],
            sessions: SessionTable::new(),
        }
    }

    /// Returns the shard count fixed at bootstrap.
    pub fn shard_count(&self) -> u32 {
        self.shard_count
    }

    /// Returns the latest configuration.
    pub fn latest(&self) -> &Config {
        self.history
            .last()
            .expect("the history always holds configuration 0")
    }

    /// Returns every configuration, indexed by number.
    pub fn history(&self) -> &[Config] {
        &self.history
    }

    /// Returns the session of every client, ordered by client id.
    pub fn sessions(&self) -> impl Iterator<Item = (u64, &Session)> {
        self.sessions
            .iter()
            .map(|(_, client, session)| (client, session))
    }

    /// Returns the session of `client_id`.
    pub fn session(&self, client_id: u64) -> Option<&Session> {
        self.sessions.get(&(), client_id)
    }

    /// Returns the number of sessions.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Returns configuration `num`, or the latest for -1 or a number past the
    /// latest.
    ///
    /// # Errors
    ///
    /// Returns [`AdminError::InvalidConfigNum`] for a negative number other
    /// than -1.
    pub fn query(&self, num: i64) -> Result<&Config, AdminError> {
        if num < -1 {
            return Err(AdminError::InvalidConfigNum { num });
        }
        let config = usize::try_from(num)
            .ok()
            .and_then(|index| self.history.get(index))
            .unwrap_or_else(|| self.latest());
        Ok(config)
    }

    /// Applies one committed request and returns the configuration it
    /// created.
    ///
    /// First, sessions unused for longer than [`SESSION_TTL_MS`] at the
    /// request's logged time are removed (see [`ControllerState::apply_logged`]).
    /// At most once: a repeat of the client's last request returns the reply
    /// recorded the first time, whether a configuration or an error, and
    /// changes nothing but the session's last use. A request is validated
    /// before anything changes.
    ///
    /// # Errors
    ///
    /// Returns the [`AdminError`] that refused the request (recorded in the
    /// session, so a retry gets it again), or, unrecorded,
    /// [`AdminError::InvalidSession`] for client id or seq 0 and
    /// [`AdminError::StaleRequest`] for a seq below the client's last.
    pub fn apply(&mut self, request: Request) -> Result<Config, AdminError> {
        self.apply_logged(request).reply
    }

    /// Applies one committed request as [`ControllerState::apply`] does, and
    /// also returns the clients whose sessions expired, which a store
    /// deletes in the same write.
    pub fn apply_logged(&mut self, request: Request) -> AppliedRequest {
        let Request {
            client_id,
            seq,
            command,
            timestamp_ms,
        } = request;
        let expired = self
            .sessions
            .expire(timestamp_ms, SESSION_TTL_MS)
            .into_iter()
            .map(|((), client)| client)
            .collect();
        let reply = self.execute_once(client_id, seq, command, timestamp_ms);
        AppliedRequest { reply, expired }
    }

    /// Executes `command` unless the session of `client_id` says `seq` was
    /// executed already.
    fn execute_once(
        &mut self,
        client_id: u64,
        seq: u64,
        command: Command,
        now_ms: u64,
    ) -> Result<Config, AdminError> {
        if client_id == 0 || seq == 0 {
            return Err(AdminError::InvalidSession { client_id, seq });
        }
        match self.sessions.check(&(), client_id, seq) {
            SessionCheck::Repeat(reply) => {
                let reply = self.replay(reply);
                self.sessions.touch(&(), client_id, now_ms);
                return reply;
            }
            SessionCheck::Stale { last_seq } => {
                return Err(AdminError::StaleRequest {
                    client_id,
                    seq,
                    last_seq,
                });
            }
            SessionCheck::New => {}
        }
        let outcome = self.execute(command);
        let recorded = match &outcome {
            Ok(config) => {
                self.history.push(config.clone());
                Ok(config.num)
            }
            Err(error) => Err(error.clone()),
        };
        self.sessions.record((), client_id, seq, recorded, now_ms);
        outcome
    }

    /// Returns the reply a repeated request gets: the recorded one.
    fn replay(&self, reply: &RecordedReply) -> Result<Config, AdminError> {
        match reply {
            Ok(num) => Ok(self.config(*num).clone()),
            Err(error) => Err(error.clone()),
        }
    }

    /// Returns configuration `num`, which must exist.
    fn config(&self, num: ConfigNum) -> &Config {
        usize::try_from(num.0)
            .ok()
            .and_then(|index| self.history.get(index))
            .expect("a recorded reply names a configuration of the append-only history")
    }

    /// Returns the configuration `command` would create, or why it is
    /// refused. Changes nothing.
    fn execute(&self, command: Command) -> Result<Config, AdminError> {
        match command {
            Command::Join { groups } => self.join(groups),
            Command::Leave { gids } => self.leave(&gids),
            Command::Move { shard, gid } => self.move_shard(shard, gid),
        }
    }

    /// Returns the latest configuration with `joining` added, rebalanced.
    fn join(&self, joining: BTreeMap<GroupId, Vec<String>>) -> Result<Config, AdminError> {
        validate_join(self.latest(), &joining)?;
        let mut groups = self.latest().groups.clone();
        groups.extend(joining);
        Ok(self.rebalanced(groups))
    }

    /// Returns the latest configuration without `gids`, rebalanced.
    fn leave(&self, gids: &[GroupId]) -> Result<Config, AdminError> {
        validate_leave(self.latest(), gids)?;
        let mut groups = self.latest().groups.clone();
        for gid in gids {
            groups.remove(gid);
        }
        Ok(self.rebalanced(groups))
    }

    /// Returns the latest configuration with `shard` on `gid`, nothing else
    /// changed.
    fn move_shard(&self, shard: ShardId, gid: GroupId) -> Result<Config, AdminError> {
        validate_move(self.latest(), self.shard_count, shard, gid)?;
        let mut config = self.latest().clone();
        config.num = config.num.next();
        config.shards[shard.index()] = gid;
        Ok(config)
    }

    /// Returns the next configuration: `groups`, with the latest shard table
    /// rebalanced over them.
    fn rebalanced(&self, groups: BTreeMap<GroupId, Vec<String>>) -> Config {
        let latest = self.latest();
        let gids: BTreeSet<GroupId> = groups.keys().copied().collect();
        Config {
            num: latest.num.next(),
            shards: rebalance(&latest.shards, &gids),
            groups,
        }
    }

    /// Returns the snapshot encoding of this state (format in `codec.rs` and
    /// docs/shardctrler.md).
    pub fn encode_snapshot(&self) -> Vec<u8> {
        crate::codec::encode_snapshot(self)
    }

    /// Decodes a state written by [`ControllerState::encode_snapshot`] and
    /// checks its invariants.
    ///
    /// # Errors
    ///
    /// Returns a [`DecodeError`] for malformed bytes or a state that breaks an
    /// invariant; never panics.
    pub fn decode_snapshot(bytes: &[u8]) -> Result<ControllerState, DecodeError> {
        crate::codec::decode_snapshot(bytes)
    }

    /// Returns a state built from decoded parts, after checking every
    /// invariant.
    pub(crate) fn from_parts(
        shard_count: u32,
        history: Vec<Config>,
        sessions: BTreeMap<u64, Session>,
    ) -> Result<ControllerState, DecodeError> {
        let mut table = SessionTable::new();
        for (client_id, session) in sessions {
            table.insert((), client_id, session);
        }
        let state = ControllerState {
            shard_count,
            history,
            sessions: table,
        };
        state
            .check_invariants()
            .map_err(|reason| DecodeError::InvalidState { reason })?;
        Ok(state)
    }

    /// Checks every invariant of the module documentation, except balance.
    ///
    /// # Errors
    ///
    /// Returns a description of the first broken invariant.
    pub fn check_invariants(&self) -> Result<(), String> {
        let initial = Config::initial(self.shard_count);
        match self.history.first() {
            None => return Err("the history is empty".to_string()),
            Some(first) if *first != initial => {
                return Err("configuration 0 is not the initial configuration".to_string());
            }
            Some(_) => {}
        }
        for (index, config) in self.history.iter().enumerate() {
            if usize::try_from(config.num.0).ok() != Some(index) {
                return Err(format!(
                    "configuration at index {index} has number {}",
                    config.num
                ));
            }
            check_config(config, self.shard_count)?;
        }
        self.check_sessions()
    }

    /// Checks the session invariants.
    fn check_sessions(&self) -> Result<(), String> {
        let config_count = self.history.len();
        for (client_id, session) in self.sessions() {
            if client_id == 0 || session.last_seq == 0 {
                return Err(format!(
                    "session of client {client_id} has a zero id or seq"
                ));
            }
            let missing = match &session.reply {
                Ok(num) => !usize::try_from(num.0).is_ok_and(|index| index < config_count),
                Err(_) => false,
            };
            if missing {
                return Err(format!(
                    "session of client {client_id} names a configuration not in the history"
                ));
            }
        }
        Ok(())
    }
}

/// Checks the invariants `types.rs` lists for one configuration.
fn check_config(config: &Config, shard_count: u32) -> Result<(), String> {
    let num = config.num;
    if config.shards.len() != shard_count as usize {
        return Err(format!(
            "configuration {num} has {} shards, expected {shard_count}",
            config.shards.len()
        ));
    }
    for (gid, servers) in &config.groups {
        if gid.is_unassigned() {
            return Err(format!("configuration {num} has a group with gid 0"));
        }
        if servers.is_empty() || servers.iter().any(String::is_empty) {
            return Err(format!("configuration {num} group {gid} has bad servers"));
        }
    }
    let owner_is_valid = |gid: &GroupId| {
        if config.groups.is_empty() {
            gid.is_unassigned()
        } else {
            config.groups.contains_key(gid)
        }
    };
    if let Some(shard) = config.shards.iter().position(|gid| !owner_is_valid(gid)) {
        return Err(format!(
            "configuration {num} shard {shard} has an invalid owner"
        ));
    }
    Ok(())
}

/// Most servers a Join may list for one group: a Raft group gains nothing
/// past a handful of voters, and the limit keeps configurations small.
pub const SERVERS_PER_GROUP_MAX: usize = 16;

/// Refuses a Join that names no group, gid 0, a present group, a group
/// without servers or with more than [`SERVERS_PER_GROUP_MAX`], an address
/// that is empty or not `host:port`, or an address listed twice (in one
/// group, in two joining groups, or by a present group; compared by
/// [`duplicate_key`]). Checks groups in ascending gid order, each group's
/// addresses in list order before the next group, so the error is the same
/// on every replica.
fn validate_join(
    latest: &Config,
    joining: &BTreeMap<GroupId, Vec<String>>,
) -> Result<(), AdminError> {
    if joining.is_empty() {
        return Err(AdminError::EmptyJoin);
    }
    // Every address listed so far, by its duplicate key.
    let mut listed: BTreeMap<String, GroupId> = BTreeMap::new();
    for (gid, servers) in &latest.groups {
        for address in servers {
            listed.entry(duplicate_key(address)).or_insert(*gid);
        }
    }
    for (gid, servers) in joining {
        let gid = *gid;
        if gid.is_unassigned() {
            return Err(AdminError::ReservedGid);
        }
        if latest.groups.contains_key(&gid) {
            return Err(AdminError::GroupAlreadyPresent { gid });
        }
        if servers.is_empty() {
            return Err(AdminError::EmptyServerList { gid });
        }
        if servers.len() > SERVERS_PER_GROUP_MAX {
            return Err(AdminError::TooManyServers {
                gid,
                count: servers.len() as u64,
                max: SERVERS_PER_GROUP_MAX as u64,
            });
        }
        for address in servers {
            if address.is_empty() {
                return Err(AdminError::EmptyServerAddress { gid });
            }
            if !is_valid_server_address(address) {
                return Err(AdminError::BadServerAddress {
                    gid,
                    address: shortened(address),
                });
            }
            let key = duplicate_key(address);
            if let Some(&listed_by) = listed.get(&key) {
                return Err(AdminError::DuplicateServerAddress {
                    address: shortened(address),
                    gid,
                    listed_by,
                });
            }
            listed.insert(key, gid);
        }
    }
    Ok(())
}

/// Refuses a Leave that names no group, gid 0, an unknown group, or a group
/// twice. Checks gids in the order given.
fn validate_leave(latest: &Config, gids: &[GroupId]) -> Result<(), AdminError> {
    if gids.is_empty() {
        return Err(AdminError::EmptyLeave);
    }
    let mut seen = BTreeSet::new();
    for gid in gids {
        let gid = *gid;
        if gid.is_unassigned() {
            return Err(AdminError::ReservedGid);
        }
        if !seen.insert(gid) {
            return Err(AdminError::DuplicateGroup { gid });
        }
        if !latest.groups.contains_key(&gid) {
            return Err(AdminError::UnknownGroup { gid });
        }
    }
    Ok(())
}

/// Refuses a Move of a shard out of range, or to gid 0 or an unknown group.
fn validate_move(
    latest: &Config,
    shard_count: u32,
    shard: ShardId,
    gid: GroupId,
) -> Result<(), AdminError> {
    if shard.0 >= shard_count {
        return Err(AdminError::ShardOutOfRange { shard, shard_count });
    }
    if gid.is_unassigned() {
        return Err(AdminError::ReservedGid);
    }
    if !latest.groups.contains_key(&gid) {
        return Err(AdminError::UnknownGroup { gid });
    }
    Ok(())
}

#[cfg(test)]
#[path = "state_machine_test.rs"]
mod tests;

#[cfg(test)]
#[path = "state_machine_session_test.rs"]
mod session_tests;
