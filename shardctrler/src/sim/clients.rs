//! Simulated admins of the controller: each sends Join, Leave and Move
//! requests one at a time under its own session, and retries a request
//! with the same sequence number, at another node if need be, until one
//! attempt is applied, exactly as `client::CtrlerClient` does against the
//! servers.
//!
//! How an attempt ends:
//! - Applied: the node it was proposed at applies an entry of the
//!   proposal's term at the proposal's index; the admin records which
//!   index answered it and moves on to its next request.
//! - Superseded: another entry lands at that index, the node crashes, or
//!   the deadline passes; the request is proposed again (a retry: it may
//!   already have been executed, which the session must make harmless).
//!   Each attempt of a request waits twice as long as the one before (up
//!   to 16 times the profile's timeout), as a real client backs off:
//!   retrying at a fixed pace faster than the group commits would only
//!   grow its log.
//!
//! Now and then an idle admin also sends again one of its last answered
//! requests, at a random node, and forgets it (a late duplicate, as a
//! network or a proxy may deliver): the session must answer it as a repeat
//! or refuse it as stale, changing nothing.
//!
//! Every entry payload any node applies is kept per index (the first one
//! seen: state machine safety makes them all equal), so the check can
//! replay the committed log (see `history_check.rs`).

use std::collections::BTreeMap;

use bytes::Bytes;
use raft::core::{EntryKind, LogIndex, NodeId, Term};
use raft::sim::cluster::{Cluster, NodeEvent};
use raft::sim::invariants::Violation;
use raft::sim::swarm::SwarmClients;
use rand::Rng;

use super::history_check::{Answered, check_admin_history};
use super::machine::{CtrlerMachine, SIM_SHARDS};
use crate::types::{GroupId, ShardId};
use crate::{Command, Request};

/// Admins act this much less often than the profile's request rate (a
/// rate drawn for key/value clients): every admin request makes a new
/// configuration, and a few hundred per seed cover every path.
const ADMIN_RATE_SCALE: f64 = 0.1;

/// The logged time of a request is its tick's, a tick being the servers'
/// default 100 ms (sessions expire after an hour: 36,000 ticks, longer
/// than a seed runs, so no admin's retry outlives its session).
const TICK_MS: u64 = 100;

/// Per tick, the chance that an idle admin sends a late duplicate, times
/// the request rate (none once the liveness check stops the load).
const LATE_DUPLICATE_RATE: f64 = 0.02;
/// An admin keeps its last this many answered requests for duplicates.
const ANSWERED_KEPT: usize = 3;

/// One proposal of a request, waiting to be applied.
#[derive(Clone, Debug)]
struct Attempt {
    node: NodeId,
    incarnation: u64,
    index: LogIndex,
    term: Term,
    deadline: u64,
}

/// One admin and the request it has not finished.
#[derive(Clone, Debug)]
struct Admin {
    client_id: u64,
    target: NodeId,
    pending: Option<(Request, Option<Attempt>)>,
    /// Attempts made of the pending request.
    attempts: u32,
    /// Its last answered requests, oldest first.
    answered: Vec<Request>,
    last_seq: u64,
    completed: u64,
}

/// The admins, the payloads applied at each index, and what answered each
/// finished request.
#[derive(Debug)]
pub struct AdminClients {
    admins: Vec<Admin>,
    /// Gids are drawn from `1..=gids`.
    gids: u64,
    timeout_ticks: u64,
    /// The payload applied at each index (empty for a membership change).
    applied: BTreeMap<LogIndex, Bytes>,
    /// Each finished request and the index whose entry answered it.
    answered: Vec<Answered>,
}

impl AdminClients {
    /// Returns `admins` admins drawing from `gids` groups, giving up on an
    /// attempt after `timeout_ticks`.
    pub fn new(admins: u64, gids: u64, timeout_ticks: u64) -> AdminClients {
        AdminClients {
            admins: (1..=admins)
                .map(|client_id| Admin {
                    client_id,
                    target: NodeId(1),
                    pending: None,
                    attempts: 0,
                    answered: Vec::new(),
                    last_seq: 0,
                    completed: 0,
                })
                .collect(),
            gids: gids.max(1),
            timeout_ticks,
            applied: BTreeMap::new(),
            answered: Vec::new(),
        }
    }

    /// Returns whether no admin has a request pending.
    pub fn idle(&self) -> bool {
        self.admins.iter().all(|admin| admin.pending.is_none())
    }

    fn on_event(&mut self, event: NodeEvent) {
        let NodeEvent::Applied { node, entry } = event else {
            return;
        };
        let payload = match entry.kind {
            EntryKind::Normal => entry.data.clone(),
            EntryKind::ConfChange => Bytes::new(),
        };
        self.applied.entry(entry.index).or_insert(payload);
        for admin in &mut self.admins {
            let Some((request, Some(attempt))) = &admin.pending else {
                continue;
            };
            if attempt.node != node || attempt.index != entry.index {
                continue;
            }
            if attempt.term == entry.term {
                self.answered.push(Answered {
                    client_id: request.client_id,
                    seq: request.seq,
                    index: entry.index,
                });
                if admin.answered.len() == ANSWERED_KEPT {
                    admin.answered.remove(0);
                }
                admin.answered.push(request.clone());
                admin.pending = None;
                admin.completed += 1;
            } else if let Some((_, attempt)) = &mut admin.pending {
                *attempt = None;
            }
        }
    }

    /// Drops an attempt whose node went down or whose deadline passed.
    fn expire(&mut self, cluster: &Cluster<CtrlerMachine>, slot: usize) {
        let admin = &mut self.admins[slot];
        let Some((_, Some(attempt))) = &admin.pending else {
            return;
        };
        let node = cluster.nodes.get(&attempt.node);
        let alive =
            node.is_some_and(|n| n.core().is_some() && n.incarnation == attempt.incarnation);
        if (!alive || cluster.now >= attempt.deadline)
            && let Some((_, attempt)) = &mut admin.pending
        {
            *attempt = None;
        }
    }

    /// Draws the next request of the admin in `slot`.
    fn next_request(&mut self, cluster: &mut Cluster<CtrlerMachine>, slot: usize) -> Request {
        let gid = GroupId(cluster.rng().random_range(1..=self.gids));
        let command = match cluster.rng().random_range(0..10) {
            0..4 => Command::Join {
                groups: BTreeMap::from([(gid, vec![format!("10.0.0.{}:7000", gid.0)])]),
            },
            4..7 => Command::Leave { gids: vec![gid] },
            _ => Command::Move {
                shard: ShardId(cluster.rng().random_range(0..SIM_SHARDS)),
                gid,
            },
        };
        let admin = &mut self.admins[slot];
        admin.last_seq += 1;
        Request {
            client_id: admin.client_id,
            seq: admin.last_seq,
            timestamp_ms: cluster.now * TICK_MS,
            command,
        }
    }

    /// Sends one of the last answered requests of `slot` again, at a random
    /// node, and forgets it.
    fn send_late_duplicate(&mut self, cluster: &mut Cluster<CtrlerMachine>, slot: usize) {
        let answered = &self.admins[slot].answered;
        if answered.is_empty() {
            return;
        }
        let mut request = answered[cluster.rng().random_range(0..answered.len())].clone();
        request.timestamp_ms = cluster.now * TICK_MS;
        let node = cluster.random_node();
        if let Some(core) = cluster.core_mut(node) {
            let _ = core.propose(Bytes::from(request.encode()));
        }
    }

    /// Proposes the pending request of `slot` at its target; on a refusal
    /// moves the target to the hinted leader or a random node.
    fn propose(&mut self, cluster: &mut Cluster<CtrlerMachine>, slot: usize) {
        let admin = &self.admins[slot];
        let Some((request, None)) = &admin.pending else {
            return;
        };
        let (target, data) = (admin.target, Bytes::from(request.encode()));
        let incarnation = cluster.nodes.get(&target).map_or(0, |n| n.incarnation);
        let result = match cluster.core_mut(target) {
            Some(core) => core.propose(data),
            None => Err(raft::core::Error::NotLeader { leader_hint: None }),
        };
        match result {
            Ok(proposal) => {
                let admin = &mut self.admins[slot];
                let patience = self.timeout_ticks << admin.attempts.min(4);
                admin.attempts += 1;
                let attempt = Attempt {
                    node: target,
                    incarnation,
                    index: proposal.index,
                    term: proposal.term,
                    deadline: cluster.now + patience,
                };
                if let Some((_, slot_attempt)) = &mut admin.pending {
                    *slot_attempt = Some(attempt);
                }
            }
            Err(error) => {
                let hint = match error {
                    raft::core::Error::NotLeader { leader_hint } => leader_hint,
                    _ => None,
                };
                self.admins[slot].target = hint.unwrap_or_else(|| cluster.random_node());
            }
        }
    }
}

impl SwarmClients<CtrlerMachine> for AdminClients {
    fn drive(&mut self, cluster: &mut Cluster<CtrlerMachine>, rate: f64, wander: f64) {
        for event in cluster.take_events() {
            self.on_event(event);
        }
        for slot in 0..self.admins.len() {
            self.expire(cluster, slot);
            if self.admins[slot].pending.is_none()
                && cluster.rng().random_bool(LATE_DUPLICATE_RATE * rate)
            {
                self.send_late_duplicate(cluster, slot);
            }
            if self.admins[slot].pending.is_none()
                && cluster.rng().random_bool(rate * ADMIN_RATE_SCALE)
            {
                if cluster.rng().random_bool(wander) {
                    self.admins[slot].target = cluster.random_node();
                }
                let request = self.next_request(cluster, slot);
                self.admins[slot].pending = Some((request, None));
                self.admins[slot].attempts = 0;
            }
            self.propose(cluster, slot);
        }
    }

    fn completed(&self) -> Vec<u64> {
        self.admins.iter().map(|admin| admin.completed).collect()
    }

    fn operations(&self) -> usize {
        self.answered.len()
    }

    fn check(&mut self, cluster: &mut Cluster<CtrlerMachine>) -> Result<bool, Violation> {
        for event in cluster.take_events() {
            self.on_event(event);
        }
        check_admin_history(&self.applied, &self.answered, cluster)?;
        Ok(false)
    }
}
