//! The configuration follower's I/O shell (DESIGN.md "Reconfiguration in
//! a group"): on the group's leader, drives the group's pending shard
//! moves ([`crate::mover`]), asks the controller for the configuration
//! after the group's current one and proposes it through the group's log
//! once the group has settled; what to propose is decided by
//! [`crate::follower::plan_next`].
//!
//! Invariants:
//! - Only the leader proposes; a configuration applies only through the
//!   log, in order (the table refuses anything else), so a proposal made
//!   twice (a leader change, a lost answer) changes nothing the second
//!   time.
//! - The controller's Watch stream ([`crate::controller_stream`]) wakes
//!   the leader as soon as a configuration commits; a `Query` at a fixed
//!   interval covers a stalled stream. A controller that does not answer
//!   delays reconfiguration, never a client request.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use proto::config::{Config, ConfigNum, GroupId};
use proto::kv::v1::shard_ctrler_client::ShardCtrlerClient;
use proto::kv::v1::{QueryRequest, Status as KvStatus};
use raft::core::Role;
use raft::driver::RaftHandle;
use tokio::time::Instant;
use tonic::transport::Channel;

use crate::controller_stream::ConfigAnnouncer;
use crate::follower::{NotYet, move_tasks, plan_next};
use crate::machine::{Applied, GroupCommand};
use crate::mover::Mover;
use crate::store_rocks::GroupReader;

/// How long one controller call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// How soon the leader tries again when a round left work.
const MOVE_TICK: Duration = Duration::from_millis(50);

/// Asks the controller replicas at `ctrler` for configurations, keeping a
/// cache of those it got (they never change).
pub struct ControllerQueries {
    ctrler: Vec<String>,
    /// The replica to ask first (the last that answered, or a hint).
    preferred: usize,
    known: BTreeMap<u64, Config>,
    /// Connections to the replicas asked so far, by index.
    clients: BTreeMap<usize, ShardCtrlerClient<Channel>>,
}

impl ControllerQueries {
    /// Returns a querier of the controller at `ctrler` (`host:port` each).
    pub fn new(ctrler: Vec<String>) -> ControllerQueries {
        ControllerQueries {
            ctrler,
            preferred: 0,
            known: BTreeMap::new(),
            clients: BTreeMap::new(),
        }
    }

    /// Returns configuration `num` (-1: the latest), or `None` if no
    /// controller replica answered.
    pub async fn query(&mut self, num: i64) -> Option<Config> {
        if let Ok(known) = u64::try_from(num)
            && let Some(config) = self.known.get(&known)
        {
            return Some(config.clone());
        }
        for attempt in 0..self.ctrler.len() {
            let index = (self.preferred + attempt) % self.ctrler.len();
            let Some(reply) = self.ask(index, num).await else {
                continue;
            };
            if reply.status == KvStatus::Ok as i32 {
                self.preferred = index;
                let config = Config::from_proto(reply.config?);
                self.known.insert(config.num.0, config.clone());
                return Some(config);
            }
            if let Some(hinted) = self.ctrler.iter().position(|a| *a == reply.leader_hint) {
                self.preferred = hinted;
            }
        }
        None
    }

    /// Asks replica `index` once, within the call timeout, over a
    /// connection kept between calls (dropped when a call fails).
    async fn ask(&mut self, index: usize, num: i64) -> Option<proto::kv::v1::QueryReply> {
        let mut client = match self.clients.get(&index) {
            Some(client) => client.clone(),
            None => {
                let endpoint = Channel::from_shared(format!("http://{}", self.ctrler[index]))
                    .ok()?
                    .connect_timeout(CALL_TIMEOUT)
                    .timeout(CALL_TIMEOUT);
                let client = ShardCtrlerClient::new(endpoint.connect().await.ok()?);
                self.clients.insert(index, client.clone());
                client
            }
        };
        match client.query(QueryRequest { num }).await {
            Ok(reply) => Some(reply.into_inner()),
            Err(_) => {
                self.clients.remove(&index);
                None
            }
        }
    }

    /// Returns a configuration the cache holds.
    fn cached(&self, num: ConfigNum) -> Option<Config> {
        self.known.get(&num.0).cloned()
    }
}

/// Follows the controller for group `gid` behind `handle` and `reader`,
/// and drives its shard moves, until the task is aborted or the node
/// stops. Only the leader works, in rounds: each drives the pending moves
/// and proposes the next configuration when it can. The next round comes
/// [`MOVE_TICK`] later while the round left work to retry (see
/// `lead_round`);
/// otherwise when the table changes, the stream announces a
/// configuration, leadership changes, or the fallback `Query` is due
/// (every `fallback`). A replica that does not lead, or leads an idle
/// group, sleeps between those events instead of ticking.
pub async fn follow(
    gid: GroupId,
    handle: RaftHandle<Option<Applied>>,
    reader: GroupReader,
    mut controller: ControllerQueries,
    fallback: Duration,
) {
    let known = reader.table().map_or(0, |table| table.config().num.0);
    let mut announcer = ConfigAnnouncer::start(controller.ctrler.clone(), known);
    let mut leadership = handle.watch_leadership();
    let mut table_changes = reader.table_changes();
    let mut mover = Mover::default();
    // A zero fallback would query the controller in a busy loop.
    let fallback = fallback.max(Duration::from_millis(1));
    let retry = MOVE_TICK.min(fallback);
    let mut last_query: Option<Instant> = None;
    loop {
        let leading = leadership.borrow_and_update().role == Role::Leader;
        table_changes.borrow_and_update();
        let next_round = if leading {
            let query_due = last_query.is_none_or(|at| at.elapsed() >= fallback);
            if query_due {
                last_query = Some(Instant::now());
            }
            let left_work = lead_round(
                gid,
                &handle,
                &reader,
                &mut controller,
                &mut mover,
                &announcer,
                query_due,
            )
            .await;
            let query_at = last_query.map_or_else(Instant::now, |at| at + fallback);
            Some(if left_work {
                (Instant::now() + retry).min(query_at)
            } else {
                query_at
            })
        } else {
            None
        };
        let sleep = async {
            match next_round {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = sleep => {}
            () = announcer.changed() => {}
            // Never an error: `reader` keeps the store's publisher alive.
            _ = table_changes.changed() => {}
            // An error: the node stopped, and the follower ends with it.
            changed = leadership.changed() => if changed.is_err() { return },
        }
    }
}

/// One round of the leader's work: drives the pending moves, then
/// proposes the next configuration if it can. Returns whether the round
/// left work to retry soon: a move step still pending, or a configuration
/// after the table's that the stream announced or a query fetched (its
/// proposal failed or waits for the group to settle).
async fn lead_round(
    gid: GroupId,
    handle: &RaftHandle<Option<Applied>>,
    reader: &GroupReader,
    controller: &mut ControllerQueries,
    mover: &mut Mover,
    announcer: &ConfigAnnouncer,
    query_due: bool,
) -> bool {
    mover.drive(gid, handle, reader, controller).await;
    if let Some(command) = next_command(reader, controller, announcer.newest(), query_due).await {
        // Applied or not, the next round looks at the table again.
        let _ = handle.propose(Bytes::from(command.encode())).await;
    }
    match reader.table() {
        Ok(table) => {
            let num = table.config().num;
            !move_tasks(&table).is_empty()
                || announcer.newest() > num.0
                || controller.cached(num.next()).is_some()
        }
        Err(_) => true,
    }
}

/// Returns the configuration entry to propose now, if any. The controller
/// is asked for the next configuration only when `announced` (the newest
/// the stream announced) reaches it or `query_due` (the fallback); a
/// configuration already fetched comes from the cache.
async fn next_command(
    reader: &GroupReader,
    controller: &mut ControllerQueries,
    announced: u64,
    query_due: bool,
) -> Option<GroupCommand> {
    let table = match reader.table() {
        Ok(table) => table,
        Err(error) => {
            tracing::warn!(%error, "cannot read the shard table to follow the controller");
            return None;
        }
    };
    if !table.settled() {
        return None;
    }
    let wanted = table.config().num.next();
    if !(query_due || announced >= wanted.0 || controller.cached(wanted).is_some()) {
        return None;
    }
    let next = controller.query(i64::try_from(wanted.0).ok()?).await?;
    if next.num != wanted {
        return None;
    }
    loop {
        match plan_next(&table, next.clone(), |num| controller.cached(num)) {
            Ok(planned) => return Some(GroupCommand::Config(planned)),
            Err(NotYet::MissingHistory { missing, .. }) => {
                controller.query(i64::try_from(missing.0).ok()?).await?;
            }
            Err(_) => return None,
        }
    }
}
