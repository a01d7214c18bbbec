//! Simulated clients of the replicated key/value register: each keeps one
//! operation in flight (Put, Append through the log; Get through
//! ReadIndex), and every operation is recorded in a history for the
//! linearizability check.
//!
//! How outcomes are decided:
//! - A write proposed at (index, term) took effect iff the proposing node
//!   applies an entry of that term at that index; another entry there means
//!   it never will (it is dropped from the history).
//! - If the proposing node crashes or the client times out first, the write
//!   stays pending: it may or may not have happened.
//! - A read is answered from the node's state once its applied index
//!   reaches the confirmed read index; an unanswered read is dropped.

use std::collections::BTreeMap;

use rand::Rng;

use crate::core::{LogIndex, NodeId, Term};
use crate::sim::cluster::{Cluster, NodeEvent};
use crate::sim::kv::KvCommand;
use linearizability::{KvInput, KvOutput, Operation};

/// What a client waits for.
#[derive(Clone, Debug)]
enum Waiting {
    /// A proposed write.
    Write { index: LogIndex, term: Term },
    /// A ReadIndex request, then its confirmed index.
    Read {
        context: u64,
        index: Option<LogIndex>,
    },
}

#[derive(Clone, Debug)]
struct InFlight {
    history_index: usize,
    node: NodeId,
    incarnation: u64,
    deadline: u64,
    waiting: Waiting,
}

#[derive(Clone, Debug)]
struct Client {
    id: u64,
    target: NodeId,
    in_flight: Option<InFlight>,
    completed: u64,
}

/// The clients and their history.
#[derive(Debug)]
pub struct Workload {
    clients: Vec<Client>,
    keys: u64,
    read_fraction: f64,
    timeout_ticks: u64,
    /// Invocation and response order (a logical clock).
    clock: u64,
    next_operation: u64,
    history: Vec<Operation>,
    /// Operations known never to have happened (their slot is skipped).
    discarded: Vec<bool>,
}

impl Workload {
    /// Returns `clients` clients over `keys` keys.
    pub fn new(clients: u64, keys: u64, read_fraction: f64, timeout_ticks: u64) -> Workload {
        Workload {
            clients: (1..=clients)
                .map(|id| Client {
                    id,
                    target: NodeId(1),
                    in_flight: None,
                    completed: 0,
                })
                .collect(),
            keys: keys.max(1),
            read_fraction,
            timeout_ticks,
            clock: 0,
            next_operation: 1,
            history: Vec::new(),
            discarded: Vec::new(),
        }
    }

    /// Returns the operations completed by each client so far.
    pub fn completed(&self) -> Vec<u64> {
        self.clients.iter().map(|c| c.completed).collect()
    }

    /// Returns the history (discarded operations removed).
    pub fn history(&self) -> Vec<Operation> {
        self.history
            .iter()
            .zip(&self.discarded)
            .filter(|(_, discarded)| !**discarded)
            .map(|(operation, _)| operation.clone())
            .collect()
    }

    fn tick_clock(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// Consumes the cluster's events, then lets each idle client start an
    /// operation with probability `rate`. An idle client first moves to a
    /// random node with probability `wander` (so clients reach deposed
    /// leaders and followers, not only the current leader).
    pub fn drive(&mut self, cluster: &mut Cluster, rate: f64, wander: f64) {
        for event in cluster.take_events() {
            self.on_event(event);
        }
        for slot in 0..self.clients.len() {
            self.check_in_flight(cluster, slot);
            if self.clients[slot].in_flight.is_none() && cluster.rng().random_bool(rate) {
                if cluster.rng().random_bool(wander) {
                    self.clients[slot].target = cluster.random_node();
                }
                self.start_operation(cluster, slot);
            }
        }
    }

    fn on_event(&mut self, event: NodeEvent) {
        match event {
            NodeEvent::Applied { node, entry } => {
                for slot in 0..self.clients.len() {
                    let Some(in_flight) = &self.clients[slot].in_flight else {
                        continue;
                    };
                    if let Waiting::Write { index, term } = in_flight.waiting
                        && in_flight.node == node
                        && index == entry.index
                    {
                        let history_index = in_flight.history_index;
                        if entry.term == term {
                            self.finish(slot, KvOutput::Written);
                        } else {
                            self.discarded[history_index] = true;
                            self.clients[slot].in_flight = None;
                        }
                    }
                }
            }
            NodeEvent::ReadReady { node, read } => {
                for client in &mut self.clients {
                    if let Some(in_flight) = &mut client.in_flight
                        && in_flight.node == node
                        && let Waiting::Read { context, index } = &mut in_flight.waiting
                        && *context == read.context
                    {
                        *index = Some(read.index);
                    }
                }
            }
        }
    }

    fn finish(&mut self, slot: usize, output: KvOutput) {
        let time = self.tick_clock();
        let in_flight = self.clients[slot].in_flight.take().expect("in flight");
        let operation = &mut self.history[in_flight.history_index];
        operation.output = Some(output);
        operation.ret = Some(time);
        self.clients[slot].completed += 1;
    }

    /// Answers a confirmed read, or gives up on an operation whose node
    /// crashed or whose deadline passed.
    fn check_in_flight(&mut self, cluster: &mut Cluster, slot: usize) {
        let Some(in_flight) = self.clients[slot].in_flight.clone() else {
            return;
        };
        let node = cluster.nodes.get(&in_flight.node);
        let alive =
            node.is_some_and(|n| n.core().is_some() && n.incarnation == in_flight.incarnation);
        if alive
            && let Waiting::Read {
                index: Some(index), ..
            } = in_flight.waiting
            && let Some(sim) = node
            && sim.state().applied >= index
        {
            let key = self.history[in_flight.history_index].key.clone();
            let value = sim.state().machine.get(&key);
            self.finish(slot, KvOutput::Value(value));
            return;
        }
        if !alive || cluster.now >= in_flight.deadline {
            if matches!(in_flight.waiting, Waiting::Read { .. }) {
                self.discarded[in_flight.history_index] = true;
            }
            self.clients[slot].in_flight = None;
            self.clients[slot].target = cluster.random_node();
        }
    }

    fn start_operation(&mut self, cluster: &mut Cluster, slot: usize) {
        let target = self.clients[slot].target;
        let key = format!("k{}", cluster.rng().random_range(0..self.keys));
        let is_read = cluster.rng().random_bool(self.read_fraction);
        let operation_id = self.next_operation;
        let input = if is_read {
            KvInput::Get
        } else if cluster.rng().random_bool(0.5) {
            KvInput::Append {
                value: format!("{operation_id}."),
            }
        } else {
            KvInput::Put {
                value: format!("{operation_id}."),
            }
        };
        let call = self.tick_clock();
        let waiting = match self.submit(cluster, target, &key, &input, operation_id) {
            Ok(waiting) => waiting,
            Err(leader_hint) => {
                let client = &mut self.clients[slot];
                client.target = leader_hint.unwrap_or_else(|| cluster.random_node());
                return;
            }
        };
        self.next_operation += 1;
        let incarnation = cluster.nodes.get(&target).map_or(0, |n| n.incarnation);
        self.history.push(Operation {
            client: self.clients[slot].id,
            key,
            input,
            output: None,
            call,
            ret: None,
        });
        self.discarded.push(false);
        self.clients[slot].in_flight = Some(InFlight {
            history_index: self.history.len() - 1,
            node: target,
            incarnation,
            deadline: cluster.now + self.timeout_ticks,
            waiting,
        });
    }

    fn submit(
        &mut self,
        cluster: &mut Cluster,
        target: NodeId,
        key: &str,
        input: &KvInput,
        operation_id: u64,
    ) -> Result<Waiting, Option<NodeId>> {
        let core = cluster.core_mut(target).ok_or(None)?;
        let command = match input {
            KvInput::Get => {
                return core
                    .read_index(operation_id)
                    .map(|()| Waiting::Read {
                        context: operation_id,
                        index: None,
                    })
                    .map_err(leader_hint);
            }
            KvInput::Put { value } => KvCommand::Put {
                key: key.into(),
                value: value.clone(),
            },
            KvInput::Append { value } => KvCommand::Append {
                key: key.into(),
                value: value.clone(),
            },
        };
        core.propose(command.encode(operation_id))
            .map(|proposal| Waiting::Write {
                index: proposal.index,
                term: proposal.term,
            })
            .map_err(leader_hint)
    }

    /// Returns the number of operations recorded per key (for reports).
    pub fn operations_per_key(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for operation in self.history() {
            *counts.entry(operation.key).or_insert(0) += 1;
        }
        counts
    }
}

fn leader_hint(error: crate::core::Error) -> Option<NodeId> {
    match error {
        crate::core::Error::NotLeader { leader_hint } => leader_hint,
        _ => None,
    }
}
