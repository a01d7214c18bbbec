//! Simulated key/value clients of the sharded store, routing and retrying
//! as `client::Client` does: each caches a configuration (asked of the
//! controller through the [`Mailbox`]) and each group's leader, sends a
//! write through the owning group's log (`Put` or `Append` of a value
//! unique to it) or a read through ReadIndex, and retries a wrong leader,
//! a wrong group (after a refresh), a shard not ready and a timeout, a
//! write always with its own sequence number, until it is answered.
//!
//! How outcomes are decided:
//! - A write proposed at (index, term) at a replica was executed iff,
//!   once the replica applied an entry of that term at that index, its
//!   shard's session of the client holds the write's sequence number (or
//!   a later one). Otherwise the replica's table says why it refused
//!   (wrong group, not ready) and the client retries.
//! - A read is answered from the replica's state once it applied the
//!   confirmed read index, if the replica's table serves the key's shard.
//! - A write never answered stays pending in the history (it may or may
//!   not have happened); a read never answered is dropped.
//!
//! Now and then an idle client also sends one of its answered appends
//! again, with its old sequence number, to a random replica of a random
//! group (a late duplicate): whichever group holds the shard must answer
//! it from the session that travelled with the shard, never apply it
//! twice.

use std::collections::BTreeMap;

use bytes::Bytes;
use linearizability::{KvInput, KvOutput, Operation};
use proto::config::{Config, GroupId, ShardId};
use raft::core::{LogIndex, NodeId, Term};
use raft::sim::cluster::{Cluster, NodeEvent};
use rand::Rng;
use rand::rngs::SmallRng;
use shardctrler::sim::SIM_SHARDS;
use shardkv::machine::GroupCommand;
use shardkv::ops::Write;
use shardkv::shards::NotServed;
use shardkv::sim::GroupSimMachine;

use crate::mailbox::{Endpoint, Envelope, Mailbox, Payload};

/// The logged time of a write is its tick's, a tick being 100 ms
/// (sessions expire after an hour: longer than a seed runs).
const TICK_MS: u64 = 100;
/// Ticks an attempt waits for its outcome before it is made again.
const ATTEMPT_TICKS: u64 = 30;
/// Ticks a configuration query waits for its answer.
const QUERY_TICKS: u64 = 20;
/// Ticks to wait before retrying a shard that is not ready.
const NOT_READY_TICKS: u64 = 5;
/// Answered appends a client keeps to send again late.
const ANSWERED_KEPT: usize = 4;

/// The groups of the world, by gid.
pub type Groups = BTreeMap<GroupId, Cluster<GroupSimMachine>>;

/// Returns the shard of `key`, as every client and server computes it.
pub fn shard_of(key: &[u8]) -> ShardId {
    ShardId(proto::shard_of_key(key, SIM_SHARDS))
}

#[derive(Clone, Debug)]
enum Waiting {
    Write {
        index: LogIndex,
        term: Term,
    },
    Read {
        context: u64,
        index: Option<LogIndex>,
    },
}

#[derive(Clone, Debug)]
struct Attempt {
    gid: GroupId,
    node: NodeId,
    incarnation: u64,
    deadline: u64,
    waiting: Waiting,
}

#[derive(Clone, Debug)]
struct Op {
    history_index: usize,
    key: String,
    /// The write, with its sequence number; `None` for a read.
    write: Option<(u64, Write)>,
    attempt: Option<Attempt>,
    retry_at: u64,
}

#[derive(Clone, Debug)]
struct KvClient {
    client_id: u64,
    last_seq: u64,
    config: Option<Config>,
    targets: BTreeMap<GroupId, u64>,
    ctrler_target: u64,
    query: Option<(u64, u64)>,
    op: Option<Op>,
    answered: Vec<(u64, Write)>,
    completed: u64,
}

/// The clients, their history, and what each had acknowledged.
#[derive(Debug)]
pub struct KvClients {
    clients: Vec<KvClient>,
    keys: u64,
    read_fraction: f64,
    late_duplicate_rate: f64,
    group_voters: u64,
    ctrler_voters: u64,
    clock: u64,
    history: Vec<Operation>,
    discarded: Vec<bool>,
    next_call: u64,
    /// The highest acknowledged sequence number of each client's writes,
    /// by shard: the shard's sessions must hold it wherever it is served.
    pub acked: BTreeMap<(u64, ShardId), u64>,
    /// The writes acknowledged since the last [`KvClients::take_acked`]:
    /// key and (unique) value.
    acked_writes: Vec<(Bytes, Bytes)>,
}

impl KvClients {
    /// Returns `clients` clients over `keys` keys of groups of
    /// `group_voters` replicas, with a controller of `ctrler_voters`.
    pub fn new(
        clients: u64,
        keys: u64,
        read_fraction: f64,
        late_duplicate_rate: f64,
        voters: (u64, u64),
    ) -> KvClients {
        KvClients {
            clients: (1..=clients)
                .map(|id| KvClient {
                    client_id: 1000 + id,
                    last_seq: 0,
                    config: None,
                    targets: BTreeMap::new(),
                    ctrler_target: 1,
                    query: None,
                    op: None,
                    answered: Vec::new(),
                    completed: 0,
                })
                .collect(),
            keys: keys.max(1),
            read_fraction,
            late_duplicate_rate,
            group_voters: voters.0,
            ctrler_voters: voters.1,
            clock: 0,
            history: Vec::new(),
            discarded: Vec::new(),
            next_call: 0,
            acked: BTreeMap::new(),
            acked_writes: Vec::new(),
        }
    }

    /// Returns and forgets the writes acknowledged since the last call.
    pub fn take_acked(&mut self) -> Vec<(Bytes, Bytes)> {
        std::mem::take(&mut self.acked_writes)
    }

    /// Returns the operations each client completed so far.
    pub fn completed(&self) -> Vec<u64> {
        self.clients.iter().map(|client| client.completed).collect()
    }

    /// Returns the history, operations known never to have happened left
    /// out.
    pub fn history(&self) -> Vec<Operation> {
        self.history
            .iter()
            .zip(&self.discarded)
            .filter(|(_, discarded)| !**discarded)
            .map(|(operation, _)| operation.clone())
            .collect()
    }

    /// Returns the keys the clients use.
    pub fn keys(&self) -> Vec<String> {
        (0..self.keys).map(|key| format!("k{key}")).collect()
    }

    /// Returns the next logical time (calls and returns are ordered by it).
    pub fn tick_clock(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// Adds an operation that completed at once (the final reads).
    pub fn record(&mut self, operation: Operation) {
        self.history.push(operation);
        self.discarded.push(false);
    }

    /// Takes the events of group `gid`'s replicas.
    pub fn on_events(
        &mut self,
        gid: GroupId,
        cluster: &Cluster<GroupSimMachine>,
        events: &[NodeEvent],
    ) {
        for event in events {
            match event {
                NodeEvent::Applied { node, entry } => {
                    for slot in 0..self.clients.len() {
                        self.on_applied(slot, gid, cluster, *node, entry.index, entry.term);
                    }
                }
                NodeEvent::ReadReady { node, read } => {
                    for client in &mut self.clients {
                        if let Some(op) = &mut client.op
                            && let Some(attempt) = &mut op.attempt
                            && attempt.gid == gid
                            && attempt.node == *node
                            && let Waiting::Read { context, index } = &mut attempt.waiting
                            && *context == read.context
                        {
                            *index = Some(read.index);
                        }
                    }
                }
            }
        }
    }

    /// Decides a write attempt whose entry slot replica `node` applied.
    fn on_applied(
        &mut self,
        slot: usize,
        gid: GroupId,
        cluster: &Cluster<GroupSimMachine>,
        node: NodeId,
        index: LogIndex,
        term: Term,
    ) {
        let client = &mut self.clients[slot];
        let Some(op) = &mut client.op else {
            return;
        };
        let Some(attempt) = &op.attempt else {
            return;
        };
        let Waiting::Write {
            index: wanted,
            term: proposed,
        } = attempt.waiting
        else {
            return;
        };
        if attempt.gid != gid || attempt.node != node || wanted != index {
            return;
        }
        op.attempt = None;
        if term != proposed {
            return;
        }
        let (seq, write) = op.write.clone().expect("a write attempt has a write");
        let shard = shard_of(write.key());
        let machine = cluster.nodes[&node].state().machine.machine();
        let executed = machine
            .sessions_of(shard)
            .iter()
            .any(|(id, session)| *id == client.client_id && session.last_seq >= seq);
        if executed {
            let acked = self.acked.entry((client.client_id, shard)).or_insert(0);
            *acked = (*acked).max(seq);
            if let Write::Put { key, value } | Write::Append { key, value } = &write {
                self.acked_writes.push((key.clone(), value.clone()));
            }
            if matches!(write, Write::Append { .. }) {
                if client.answered.len() == ANSWERED_KEPT {
                    client.answered.remove(0);
                }
                client.answered.push((seq, write));
            }
            self.finish(slot, KvOutput::Written);
            return;
        }
        match machine.table().route(shard) {
            Err(NotServed::WrongGroup) => client.config = None,
            Err(NotServed::NotReady) => op.retry_at = cluster.now + NOT_READY_TICKS,
            Ok(()) => {}
        }
    }

    fn finish(&mut self, slot: usize, output: KvOutput) {
        let time = self.tick_clock();
        let op = self.clients[slot].op.take().expect("an operation");
        let operation = &mut self.history[op.history_index];
        operation.output = Some(output);
        operation.ret = Some(time);
        self.clients[slot].completed += 1;
    }

    /// Takes an answer from the controller.
    pub fn on_reply(&mut self, slot: usize, payload: Payload) {
        let Payload::Queried { call, config } = payload else {
            return;
        };
        let client = &mut self.clients[slot];
        if client.query.is_some_and(|(pending, _)| pending == call) {
            client.query = None;
        }
        if client
            .config
            .as_ref()
            .is_none_or(|known| known.num < config.num)
        {
            client.config = Some(config);
        }
    }

    /// Lets each client go on: answers confirmed reads, drops attempts
    /// that timed out or whose replica went down, starts new operations
    /// with probability `rate`, and makes the next attempt of each one.
    pub fn drive(
        &mut self,
        groups: &mut Groups,
        mailbox: &mut Mailbox,
        rng: &mut SmallRng,
        now: u64,
        rate: f64,
    ) {
        for slot in 0..self.clients.len() {
            self.check_attempt(slot, groups, now);
            if self.clients[slot].op.is_none()
                && rng.random_bool(self.late_duplicate_rate * rate.min(1.0))
            {
                self.send_late_duplicate(slot, groups, rng, now);
            }
            if self.clients[slot].op.is_none() && rng.random_bool(rate) {
                self.start(slot, rng);
            }
            self.attempt(slot, groups, mailbox, rng, now);
        }
    }

    fn check_attempt(&mut self, slot: usize, groups: &Groups, now: u64) {
        let client = &mut self.clients[slot];
        let Some(op) = &mut client.op else {
            return;
        };
        let Some(attempt) = &op.attempt else {
            return;
        };
        let cluster = &groups[&attempt.gid];
        let alive = cluster.core(attempt.node).is_some()
            && cluster.nodes[&attempt.node].incarnation == attempt.incarnation;
        if alive
            && let Waiting::Read {
                index: Some(index), ..
            } = attempt.waiting
            && cluster.nodes[&attempt.node].state().applied >= index
        {
            let machine = cluster.nodes[&attempt.node].state().machine.machine();
            match machine.read(op.key.as_bytes()) {
                Ok(value) => {
                    let value = value.map_or_else(String::new, |bytes| {
                        String::from_utf8_lossy(&bytes).into_owned()
                    });
                    self.finish(slot, KvOutput::Value(value));
                }
                Err(NotServed::WrongGroup) => {
                    op.attempt = None;
                    client.config = None;
                }
                Err(NotServed::NotReady) => {
                    op.attempt = None;
                    op.retry_at = now + NOT_READY_TICKS;
                }
            }
            return;
        }
        if !alive || now >= attempt.deadline {
            let gid = attempt.gid;
            op.attempt = None;
            let target = client.targets.entry(gid).or_insert(1);
            *target = *target % self.group_voters + 1;
        }
    }

    fn start(&mut self, slot: usize, rng: &mut SmallRng) {
        let key = format!("k{}", rng.random_range(0..self.keys));
        let client = &mut self.clients[slot];
        let is_read = rng.random_bool(self.read_fraction);
        let (input, write) = if is_read {
            (KvInput::Get, None)
        } else {
            client.last_seq += 1;
            let seq = client.last_seq;
            let value = format!("c{}s{seq};", client.client_id);
            let bytes = (Bytes::from(key.clone()), Bytes::from(value.clone()));
            if rng.random_bool(0.5) {
                let write = Write::Append {
                    key: bytes.0,
                    value: bytes.1,
                };
                (KvInput::Append { value }, Some((seq, write)))
            } else {
                let write = Write::Put {
                    key: bytes.0,
                    value: bytes.1,
                };
                (KvInput::Put { value }, Some((seq, write)))
            }
        };
        let client_id = self.clients[slot].client_id;
        let call = self.tick_clock();
        self.history.push(Operation {
            client: client_id,
            key: key.clone(),
            input,
            output: None,
            call,
            ret: None,
        });
        self.discarded.push(false);
        self.clients[slot].op = Some(Op {
            history_index: self.history.len() - 1,
            key,
            write,
            attempt: None,
            retry_at: 0,
        });
    }

    /// Makes the next attempt of the operation of `slot`, if it waits for
    /// none: asks the controller first if the configuration is unknown or
    /// does not place the key's shard.
    fn attempt(
        &mut self,
        slot: usize,
        groups: &mut Groups,
        mailbox: &mut Mailbox,
        rng: &mut SmallRng,
        now: u64,
    ) {
        let client = &mut self.clients[slot];
        let Some(op) = &client.op else {
            return;
        };
        if op.attempt.is_some() || now < op.retry_at {
            return;
        }
        let shard = shard_of(op.key.as_bytes());
        let owner = client
            .config
            .as_ref()
            .and_then(|config| config.owner(shard))
            .filter(|gid| groups.contains_key(gid));
        let Some(gid) = owner else {
            self.ask_config(slot, mailbox, rng, now);
            return;
        };
        let node = NodeId(*client.targets.entry(gid).or_insert(1));
        let cluster = groups.get_mut(&gid).expect("checked above");
        let incarnation = cluster.nodes[&node].incarnation;
        let Some(core) = cluster.core_mut(node) else {
            client.targets.insert(gid, node.0 % self.group_voters + 1);
            return;
        };
        let result = match &op.write {
            Some((seq, write)) => {
                let command = GroupCommand::Write {
                    client_id: client.client_id,
                    seq: *seq,
                    timestamp_ms: now * TICK_MS,
                    write: write.clone(),
                };
                core.propose(Bytes::from(command.encode()))
                    .map(|proposal| Waiting::Write {
                        index: proposal.index,
                        term: proposal.term,
                    })
            }
            None => {
                self.next_call += 1;
                let context = self.next_call;
                core.read_index(context).map(|()| Waiting::Read {
                    context,
                    index: None,
                })
            }
        };
        let op = client.op.as_mut().expect("checked above");
        match result {
            Ok(waiting) => {
                op.attempt = Some(Attempt {
                    gid,
                    node,
                    incarnation,
                    deadline: now + ATTEMPT_TICKS,
                    waiting,
                });
            }
            Err(raft::core::Error::NotLeader {
                leader_hint: Some(hint),
            }) => {
                client.targets.insert(gid, hint.0);
            }
            Err(_) => {
                client.targets.insert(gid, node.0 % self.group_voters + 1);
            }
        }
    }

    /// Asks the controller for the latest configuration for the client in
    /// `slot`, unless a query is in flight, and retries a little later.
    fn ask_config(&mut self, slot: usize, mailbox: &mut Mailbox, rng: &mut SmallRng, now: u64) {
        let client = &mut self.clients[slot];
        if client.query.is_some_and(|(_, deadline)| deadline <= now) {
            client.query = None;
            client.ctrler_target = client.ctrler_target % self.ctrler_voters + 1;
        }
        if client.query.is_some() {
            return;
        }
        self.next_call += 1;
        client.query = Some((self.next_call, now + QUERY_TICKS));
        let envelope = Envelope {
            from: Endpoint::Client(slot),
            to: Endpoint::Ctrler(NodeId(client.ctrler_target)),
            payload: Payload::Query {
                call: self.next_call,
                num: -1,
            },
        };
        mailbox.send(envelope, now, rng);
        if let Some(op) = &mut client.op {
            op.retry_at = now + NOT_READY_TICKS;
        }
    }

    /// Sends one of the answered appends of `slot` again to a random
    /// replica of a random group, and forgets it.
    fn send_late_duplicate(
        &mut self,
        slot: usize,
        groups: &mut Groups,
        rng: &mut SmallRng,
        now: u64,
    ) {
        let client = &mut self.clients[slot];
        if client.answered.is_empty() {
            return;
        }
        let (seq, write) = client
            .answered
            .remove(rng.random_range(0..client.answered.len()));
        // Mostly to the shard's owner as the client knows it (where a
        // session that did not travel would let it apply again), else to
        // any group.
        let gids: Vec<GroupId> = groups.keys().copied().collect();
        let owner = client
            .config
            .as_ref()
            .and_then(|config| config.owner(shard_of(write.key())))
            .filter(|gid| groups.contains_key(gid));
        let gid = match owner {
            Some(owner) if rng.random_bool(0.8) => owner,
            _ => gids[rng.random_range(0..gids.len())],
        };
        let node = NodeId(rng.random_range(1..=self.group_voters));
        let command = GroupCommand::Write {
            client_id: client.client_id,
            seq,
            timestamp_ms: now * TICK_MS,
            write,
        };
        if let Some(core) = groups
            .get_mut(&gid)
            .and_then(|cluster| cluster.core_mut(node))
        {
            let _ = core.propose(Bytes::from(command.encode()));
        }
    }
}
