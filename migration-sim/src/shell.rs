//! The I/O shells of a group replica, simulated: what `config_watch`,
//! `mover` and `transfer` do on a server, with the same pure decisions
//! (`follower::plan_next`, `follower::move_tasks`, the machine's chunk
//! reads and `ShardTable::handed_over_since`) and calls sent through the
//! [`Mailbox`] instead of gRPC.
//!
//! - [`Shell`]: one replica's follower and mover, acting while the replica
//!   believes it leads its group (a deposed leader that does not know it
//!   acts too, as a server's loop would): it asks the controller for the
//!   next configuration and proposes it once the group has settled, pulls
//!   up to `PULLS_AT_ONCE` shards chunk by chunk from where the log stands
//!   and installs each chunk through the log, then asks the holder to
//!   delete its copy and records that through the log.
//! - [`serve`]: a replica's answers to other groups' calls (the holder's
//!   side) and the controller's answers to queries.
//!
//! Invariants:
//! - A shell's state is its process's: a crash or restart of the replica
//!   gives it a new, empty shell (the log is the only record of progress).
//! - Every call and proposal has a deadline, so a lost message or a lost
//!   proposal delays a move, never stops it.

use std::collections::BTreeMap;

use bytes::Bytes;
use proto::config::{Config, ConfigNum, GroupId, ShardId};
use raft::core::NodeId;
use raft::sim::cluster::Cluster;
use rand::rngs::SmallRng;
use shardctrler::sim::CtrlerMachine;
use shardkv::follower::{MoveTask, NotYet, move_tasks, plan_next};
use shardkv::machine::{GroupCommand, InstallPosition};
use shardkv::mover::PULLS_AT_ONCE;
use shardkv::shards::{ShardState, ShardTable};
use shardkv::sim::GroupSimMachine;

use crate::mailbox::{Answer, Endpoint, Envelope, Mailbox, Payload};

/// A shell acts every this many ticks (a server's move tick).
const ACT_TICKS: u64 = 3;
/// A call or a proposal not answered within this many ticks is dropped
/// (and made again by a later round).
const DEADLINE_TICKS: u64 = 40;
/// The controller is asked again after this many ticks without news.
const QUERY_TICKS: u64 = 10;

/// A call in flight.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Call {
    Fetch {
        shard: ShardId,
        holder: GroupId,
        node: u64,
    },
    Delete {
        shard: ShardId,
        num: ConfigNum,
        holder: GroupId,
        node: u64,
    },
    Query,
}

/// A proposal whose effect the shell waits to see in the state.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    Install { shard: ShardId, cursor: Bytes },
    Cleaned { shard: ShardId, num: ConfigNum },
    Config { num: ConfigNum },
}

/// The world around a shell: where it sends and what it draws from.
pub struct Io<'a> {
    /// The calls between groups.
    pub mailbox: &'a mut Mailbox,
    /// The world's generator.
    pub rng: &'a mut SmallRng,
    /// The current tick.
    pub now: u64,
}

/// One replica's follower and mover.
#[derive(Debug)]
pub struct Shell {
    gid: GroupId,
    id: NodeId,
    /// The replica's incarnation this shell belongs to.
    pub incarnation: u64,
    known: BTreeMap<u64, Config>,
    ctrler_target: u64,
    holder_targets: BTreeMap<GroupId, u64>,
    calls: BTreeMap<u64, (Call, u64)>,
    steps: BTreeMap<Step, u64>,
    next_call: u64,
    last_query: u64,
}

impl Shell {
    /// Returns the empty shell of replica `id` of group `gid` in its
    /// `incarnation`.
    pub fn new(gid: GroupId, id: NodeId, incarnation: u64) -> Shell {
        Shell {
            gid,
            id,
            incarnation,
            known: BTreeMap::new(),
            ctrler_target: 1,
            holder_targets: BTreeMap::new(),
            calls: BTreeMap::new(),
            steps: BTreeMap::new(),
            next_call: 0,
            last_query: 0,
        }
    }

    fn endpoint(&self) -> Endpoint {
        Endpoint::Group(self.gid, self.id)
    }

    fn call(
        &mut self,
        call: Call,
        to: Endpoint,
        payload: impl FnOnce(u64) -> Payload,
        io: &mut Io,
    ) {
        self.next_call += 1;
        let id = self.next_call;
        self.calls.insert(id, (call, io.now + DEADLINE_TICKS));
        let envelope = Envelope {
            from: self.endpoint(),
            to,
            payload: payload(id),
        };
        io.mailbox.send(envelope, io.now, io.rng);
    }

    /// Moves on from replica `failed` of `holder`: to the leader it named,
    /// or the next replica.
    fn redirect(&mut self, holder: GroupId, failed: u64, hint: Option<NodeId>, voters: u64) {
        let next = hint.map_or(failed % voters + 1, |hint| hint.0);
        self.holder_targets.insert(holder, next);
    }

    /// Acts once if this replica believes it leads and the tick is one to
    /// act at: drops what passed its deadline, drives the moves of the
    /// table, and proposes the next configuration when the group has
    /// settled.
    pub fn act(
        &mut self,
        cluster: &mut Cluster<GroupSimMachine>,
        voters: (u64, u64),
        transfer_bytes_max: u64,
        io: &mut Io,
    ) {
        if !io.now.is_multiple_of(ACT_TICKS) || !leads(cluster, self.id) {
            return;
        }
        let state = cluster.nodes[&self.id].state();
        if state.restoring.is_some() {
            return;
        }
        let machine = state.machine.machine();
        let (table, installing) = (machine.table().clone(), machine.installing().clone());
        self.expire(&table, &installing, voters, io.now);
        self.drive_moves(&table, &installing, transfer_bytes_max, io);
        self.follow_controller(cluster, &table, io);
    }

    /// Sends the calls the table's moves wait on: a chunk fetch for each
    /// shard being pulled (up to `PULLS_AT_ONCE` at a time), a delete for
    /// each shard being cleaned, none twice at once.
    fn drive_moves(
        &mut self,
        table: &ShardTable,
        installing: &BTreeMap<ShardId, InstallPosition>,
        transfer_bytes_max: u64,
        io: &mut Io,
    ) {
        let mut pulls = self
            .calls
            .values()
            .filter(|(call, _)| matches!(call, Call::Fetch { .. }))
            .count()
            + self
                .steps
                .keys()
                .filter(|step| matches!(step, Step::Install { .. }))
                .count();
        for task in move_tasks(table) {
            match task {
                MoveTask::Pull { shard, from, num } => {
                    let Some(cursor) = installing
                        .get(&shard)
                        .map(|position| position.cursor.clone())
                    else {
                        continue;
                    };
                    let busy = self.calls.values().any(
                        |(call, _)| matches!(call, Call::Fetch { shard: s, .. } if *s == shard),
                    ) || self.steps.contains_key(&Step::Install {
                        shard,
                        cursor: cursor.clone(),
                    });
                    if busy || pulls >= PULLS_AT_ONCE {
                        continue;
                    }
                    pulls += 1;
                    self.fetch(shard, from, num, cursor, transfer_bytes_max, io);
                }
                MoveTask::Clean { shard, from, num } => {
                    let busy = self.calls.values().any(
                        |(call, _)| matches!(call, Call::Delete { shard: s, .. } if *s == shard),
                    ) || self.steps.contains_key(&Step::Cleaned { shard, num });
                    if busy {
                        continue;
                    }
                    self.ask_delete(shard, from, num, io);
                }
            }
        }
    }

    /// Asks replica the shell targets in `holder` for the chunk of `shard`
    /// at `cursor` (move `num`).
    fn fetch(
        &mut self,
        shard: ShardId,
        holder: GroupId,
        num: ConfigNum,
        cursor: Bytes,
        bytes_max: u64,
        io: &mut Io,
    ) {
        let (gid, node) = (self.gid, self.holder_target(holder));
        let call = Call::Fetch {
            shard,
            holder,
            node,
        };
        let to = Endpoint::Group(holder, NodeId(node));
        let payload = |call| Payload::Fetch {
            call,
            to: gid,
            shard,
            num,
            cursor,
            bytes_max,
        };
        self.call(call, to, payload, io);
    }

    /// Asks the replica the shell targets in `holder` to delete `shard`
    /// (move `num`).
    fn ask_delete(&mut self, shard: ShardId, holder: GroupId, num: ConfigNum, io: &mut Io) {
        let (gid, node) = (self.gid, self.holder_target(holder));
        let call = Call::Delete {
            shard,
            num,
            holder,
            node,
        };
        let to = Endpoint::Group(holder, NodeId(node));
        let payload = |call| Payload::Delete {
            call,
            to: gid,
            shard,
            num,
        };
        self.call(call, to, payload, io);
    }

    /// Drops the calls past their deadline (asking another replica next
    /// time) and the proposals whose effect shows in the state or whose
    /// deadline passed.
    fn expire(
        &mut self,
        table: &ShardTable,
        installing: &BTreeMap<ShardId, InstallPosition>,
        voters: (u64, u64),
        now: u64,
    ) {
        let (group_voters, ctrler_voters) = voters;
        let expired: Vec<Call> = self
            .calls
            .values()
            .filter(|(_, deadline)| *deadline <= now)
            .map(|(call, _)| call.clone())
            .collect();
        self.calls.retain(|_, (_, deadline)| *deadline > now);
        for call in expired {
            match call {
                Call::Fetch { holder, node, .. } | Call::Delete { holder, node, .. } => {
                    self.redirect(holder, node, None, group_voters);
                }
                Call::Query => self.ctrler_target = self.ctrler_target % ctrler_voters + 1,
            }
        }
        self.steps.retain(|step, deadline| {
            *deadline > now
                && match step {
                    Step::Install { shard, cursor } => {
                        installing.get(shard).map(|position| &position.cursor) == Some(cursor)
                    }
                    Step::Cleaned { shard, num } => {
                        table.config().num == *num
                            && matches!(table.state(*shard), Some(ShardState::Cleaning { .. }))
                    }
                    Step::Config { num } => table.config().num < *num,
                }
        });
    }

    fn holder_target(&self, holder: GroupId) -> u64 {
        self.holder_targets.get(&holder).copied().unwrap_or(1)
    }

    /// Proposes the configuration after the table's once it has settled,
    /// asking the controller for what it lacks.
    fn follow_controller(
        &mut self,
        cluster: &mut Cluster<GroupSimMachine>,
        table: &ShardTable,
        io: &mut Io,
    ) {
        if !table.settled() {
            return;
        }
        let wanted = table.config().num.next();
        let mut ask = Some(wanted.0);
        if let Some(next) = self.known.get(&wanted.0).cloned() {
            ask = None;
            let known = &self.known;
            match plan_next(table, next, |num| known.get(&num.0).cloned()) {
                Ok(planned) => {
                    let step = Step::Config { num: wanted };
                    if !self.steps.contains_key(&step) {
                        let command = GroupCommand::Config(planned);
                        if propose(cluster, self.id, command) {
                            self.steps.insert(step, io.now + DEADLINE_TICKS);
                        }
                    }
                }
                Err(NotYet::MissingHistory { missing, .. }) => ask = Some(missing.0),
                Err(_) => {}
            }
        }
        let querying = self.calls.values().any(|(call, _)| *call == Call::Query);
        if let Some(num) = ask
            && !querying
            && io.now >= self.last_query + QUERY_TICKS
        {
            self.last_query = io.now;
            let to = Endpoint::Ctrler(NodeId(self.ctrler_target));
            self.call(
                Call::Query,
                to,
                |call| Payload::Query {
                    call,
                    num: i64::try_from(num).unwrap_or(-1),
                },
                io,
            );
        }
    }

    /// Takes the answer to one of this shell's calls, from replica
    /// `replier` of the group asked.
    pub fn on_reply(
        &mut self,
        cluster: &mut Cluster<GroupSimMachine>,
        replier: NodeId,
        payload: Payload,
        group_voters: u64,
        now: u64,
    ) {
        let call = match &payload {
            Payload::Fetched { call, .. }
            | Payload::Deleted { call, .. }
            | Payload::Queried { call, .. } => *call,
            _ => return,
        };
        let Some((pending, _)) = self.calls.remove(&call) else {
            return;
        };
        match (pending, payload) {
            (Call::Fetch { holder, .. }, Payload::Fetched { answer, .. }) => match answer {
                Answer::NotLeader(hint) => self.redirect(holder, replier.0, hint, group_voters),
                Answer::Ok(None) => {}
                Answer::Ok(Some(chunk)) => {
                    let step = Step::Install {
                        shard: chunk.shard,
                        cursor: chunk.cursor.clone(),
                    };
                    if leads(cluster, self.id)
                        && propose(cluster, self.id, GroupCommand::Install(chunk))
                    {
                        self.steps.insert(step, now + DEADLINE_TICKS);
                    }
                }
            },
            (
                Call::Delete {
                    shard, num, holder, ..
                },
                Payload::Deleted { answer, .. },
            ) => match answer {
                Answer::NotLeader(hint) => self.redirect(holder, replier.0, hint, group_voters),
                Answer::Ok(false) => {}
                Answer::Ok(true) => {
                    if leads(cluster, self.id)
                        && propose(cluster, self.id, GroupCommand::Cleaned { shard, num })
                    {
                        self.steps
                            .insert(Step::Cleaned { shard, num }, now + DEADLINE_TICKS);
                    }
                }
            },
            (Call::Query, Payload::Queried { config, .. }) => {
                self.known.insert(config.num.0, config);
            }
            _ => {}
        }
    }
}

/// Returns whether replica `id` is up and believes it leads its group.
pub fn leads<M: raft::sim::app::SimMachine>(cluster: &Cluster<M>, id: NodeId) -> bool {
    cluster
        .core(id)
        .is_some_and(|core| core.leader() == Some(id))
}

/// Proposes `command` at replica `id`; returns whether it was accepted.
fn propose(cluster: &mut Cluster<GroupSimMachine>, id: NodeId, command: GroupCommand) -> bool {
    cluster
        .core_mut(id)
        .is_some_and(|core| core.propose(Bytes::from(command.encode())).is_ok())
}

/// Answers a call that reached replica `id` of group `gid` (the holder's
/// side of a move): a chunk of a shard it sends, or the deletion of a
/// shard through its log. Returns the reply to send, if any.
pub fn serve(
    cluster: &mut Cluster<GroupSimMachine>,
    id: NodeId,
    payload: Payload,
) -> Option<Payload> {
    let hint = cluster.core(id)?.leader();
    let leader = hint == Some(id);
    let state = cluster.nodes[&id].state();
    let restoring = state.restoring.is_some();
    match payload {
        Payload::Fetch {
            call,
            to,
            shard,
            num,
            cursor,
            bytes_max,
        } => {
            let answer = match leader && !restoring {
                false => Answer::NotLeader(hint),
                true => Answer::Ok(state.machine.machine().read_chunk(
                    to,
                    shard,
                    num,
                    &cursor,
                    bytes_max.max(1),
                )),
            };
            Some(Payload::Fetched { call, answer })
        }
        Payload::Delete {
            call,
            to,
            shard,
            num,
        } => {
            if !leader || restoring {
                return Some(Payload::Deleted {
                    call,
                    answer: Answer::NotLeader(hint),
                });
            }
            let gone = state
                .machine
                .machine()
                .table()
                .handed_over_since(shard, num);
            if !gone {
                propose(cluster, id, GroupCommand::HandOver { shard, to, num });
            }
            Some(Payload::Deleted {
                call,
                answer: Answer::Ok(gone),
            })
        }
        _ => None,
    }
}

/// Answers a configuration query at controller replica `id` (any replica
/// answers from what it applied: configurations never change once made).
pub fn serve_query(
    cluster: &Cluster<CtrlerMachine>,
    id: NodeId,
    payload: Payload,
) -> Option<Payload> {
    cluster.core(id)?;
    let state = cluster.nodes[&id].state();
    if state.restoring.is_some() {
        return None;
    }
    let Payload::Query { call, num } = payload else {
        return None;
    };
    let config = state.machine.state().query(num).ok()?.clone();
    Some(Payload::Queried { call, config })
}
