//! The task that owns one Raft node: it feeds ticks, peer messages and
//! application requests into the core and handles each `Ready` per the
//! contract (persist with one synced write, send, apply, advance).
//!
//! Invariants:
//! - Only this task, on the node's own thread, touches the core, the
//!   storage and the state machine; its synced writes block that thread
//!   only.
//! - Nothing leaves the node (vote, append acknowledgement, proposal
//!   answer) before the Ready that produced it is durable; only the
//!   leader's appends, which acknowledge nothing, leave before.
//! - A proposal is answered once its index is applied: success if the
//!   applied entry has the proposal's term, `NotLeader` otherwise.
//! - A read is answered only once the application applied at least the
//!   read index a heartbeat quorum confirmed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Notify, mpsc, oneshot, watch};
use tracing::{error, info};

use bytes::Bytes;

use crate::core::{
    Config, Entry, EntryKind, LogIndex, Node, NodeId, Ready, Role, SnapshotChunk, SnapshotMeta,
    Status, StorageError, Term, describe_position,
};
use crate::driver::error::ProposeError;
use crate::driver::handle::{Leadership, ProposalReply, RaftHandle, Request};
use crate::driver::join::NodeJoinHandle;
use crate::driver::log_keep::AppliedSizes;
use crate::driver::metrics::{NodeMetrics, ProposalOutcome};
use crate::driver::snapshot_reads::SnapshotReads;
use crate::driver::state_machine::StateMachine;
use crate::storage::Storage;
use crate::transport::{InboundReceiver, Transport};

/// How a node runs.
#[derive(Clone, Debug)]
pub struct NodeOptions {
    /// The Raft group (a label and a check on peer traffic).
    pub group: u64,
    /// The duration of one tick (election timeout and heartbeat are
    /// counted in ticks by `raft`).
    pub tick: Duration,
    /// The core's configuration.
    pub raft: Config,
    /// Requests queued before callers get `Overloaded`.
    pub request_queue: usize,
    /// Bytes of proposals queued before callers get `Overloaded`.
    pub request_queue_bytes: u64,
    /// Proposals in flight (proposed, not yet applied) before new ones get
    /// `Overloaded`.
    pub proposals_in_flight_max: usize,
    /// Bytes of proposals in flight before new ones get `Overloaded` (a
    /// single larger one is taken when none is in flight).
    pub proposal_bytes_in_flight_max: u64,
    /// Deadline of a request made through the handle.
    pub request_timeout: Duration,
    /// Compact the log once this many entries were applied since the last
    /// compaction (or `compact_interval_bytes` of them). Compaction only
    /// drops log entries: the application's state is the snapshot.
    pub compact_interval_entries: u64,
    /// Compact the log once this many bytes of entries were applied since
    /// the last compaction.
    pub compact_interval_bytes: u64,
    /// Entries kept below the applied index at compaction, so a follower
    /// a little behind catches up from the log rather than by snapshot.
    pub compact_keep_entries: u64,
    /// At most this many bytes of entries are kept below the applied index
    /// at compaction, however few entries that is, while every follower
    /// holds them: large entries (a shard chunk of 1 MiB) are dropped soon
    /// after they apply, in the memtable, instead of reaching the log's
    /// files.
    pub compact_keep_bytes: u64,
    /// On a leader, bytes of entries kept below the applied index for a
    /// follower that does not hold them yet (at most; one further behind
    /// catches up by snapshot).
    pub compact_keep_bytes_for_followers: u64,
}

impl NodeOptions {
    /// Returns production defaults for node `id` of `group`: 100 ms ticks,
    /// so heartbeats every 100 ms and elections after 1 to 2 s.
    pub fn new(group: u64, id: NodeId) -> NodeOptions {
        NodeOptions {
            group,
            tick: Duration::from_millis(100),
            raft: Config::new(id),
            request_queue: 4096,
            request_queue_bytes: 64 << 20,
            proposals_in_flight_max: 10_000,
            proposal_bytes_in_flight_max: 64 << 20,
            request_timeout: Duration::from_secs(5),
            compact_interval_entries: 10_000,
            compact_interval_bytes: 2 << 20,
            compact_keep_entries: 1_000,
            compact_keep_bytes: 1 << 20,
            compact_keep_bytes_for_followers: 16 << 20,
        }
    }
}

/// A proposal waiting for its index to apply.
struct PendingProposal<O> {
    term: Term,
    /// The payload's size (0 for a membership change).
    bytes: u64,
    reply: oneshot::Sender<ProposalReply<O>>,
}

/// The node's task state.
pub struct NodeTask<S: Storage + Send + 'static, M: StateMachine> {
    node: Node<S>,
    machine: M,
    transport: Arc<dyn Transport>,
    inbound: InboundReceiver,
    requests: mpsc::Receiver<Request<M::Output>>,
    options: NodeOptions,
    proposals: BTreeMap<LogIndex, PendingProposal<M::Output>>,
    /// Invariant: the sum of `bytes` over `proposals`.
    proposal_bytes: u64,
    /// Reads sent to the core, by context, awaiting quorum confirmation.
    reads_confirming: BTreeMap<u64, oneshot::Sender<Result<LogIndex, ProposeError>>>,
    /// Confirmed reads awaiting the application to reach their index.
    reads_applying: Vec<(LogIndex, oneshot::Sender<Result<LogIndex, ProposeError>>)>,
    next_read_context: u64,
    status: watch::Sender<Status>,
    /// Notifies only when the term, role or known leader changes.
    leadership: watch::Sender<Leadership>,
    metrics: NodeMetrics,
    last_role: Role,
    /// Bytes of the entries applied since the last compaction.
    log_bytes_since_compaction: u64,
    /// The sizes of the last applied entries: where compaction may cut
    /// to keep `compact_keep_bytes`.
    applied_sizes: AppliedSizes,
    /// The index of the last membership change applied (the applied index
    /// at start, not knowing better): compaction never goes below it, so
    /// the membership it records is the one in force at its index.
    last_conf_change: LogIndex,
    /// Leader: the pinned views of snapshots being sent.
    snapshot_reads: SnapshotReads,
}

/// Starts a node on a thread of its own (named `raft-<group>-<id>`, with a
/// single-threaded tokio runtime), so its synced writes block only that
/// thread. The transport keeps sending on the runtime it was made on.
/// Returns the application's handle and the node's join handle, which
/// resolves when the node stops (storage failure, [`NodeJoinHandle::abort`],
/// or every application handle dropped).
pub fn spawn_node<S: Storage + Send + 'static, M: StateMachine>(
    mut options: NodeOptions,
    storage: S,
    mut machine: M,
    transport: Arc<dyn Transport>,
    inbound: InboundReceiver,
) -> Result<(RaftHandle<M::Output>, NodeJoinHandle), crate::core::Error> {
    options.raft.restoring = machine.restoring();
    if options.raft.restoring.is_none() {
        catch_up_with_prefix(&storage, &mut machine)?;
        options.raft.applied = machine.applied_index();
    }
    let id = options.raft.id;
    let seed = id.0 ^ u64::from(std::process::id()) ^ nanos_now();
    let node = Node::new(options.raft.clone(), storage, seed)?;
    let (status_sender, status_receiver) = watch::channel(node.status());
    let (leadership_sender, leadership_receiver) =
        watch::channel(Leadership::of(&status_receiver.borrow()));
    let (request_sender, requests) = mpsc::channel(options.request_queue);
    let handle = RaftHandle::new(
        request_sender,
        options.request_queue_bytes,
        status_receiver,
        leadership_receiver,
        options.request_timeout,
    );
    let metrics = NodeMetrics::new(options.group, id);
    let thread_name = format!("raft-{}-{}", options.group, id.0);
    let last_conf_change = options.raft.applied;
    let snapshot_reads = SnapshotReads::new(options.raft.snapshot_chunk_bytes);
    let task = NodeTask {
        node,
        machine,
        transport,
        inbound,
        requests,
        proposals: BTreeMap::new(),
        proposal_bytes: 0,
        reads_confirming: BTreeMap::new(),
        reads_applying: Vec::new(),
        next_read_context: 1,
        status: status_sender,
        leadership: leadership_sender,
        metrics,
        last_role: Role::Follower,
        log_bytes_since_compaction: 0,
        applied_sizes: AppliedSizes::new(options.compact_keep_entries),
        last_conf_change,
        snapshot_reads,
        options,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(|error| StorageError::Io(format!("cannot start the node's runtime: {error}")))?;
    let join = NodeJoinHandle::spawn(thread_name, move |stop| {
        // `run` consumes the task: storage and state machine are dropped
        // before the outcome is reported.
        let result = runtime.block_on(task.run(stop));
        drop(runtime);
        result
    })
    .map_err(|error| StorageError::Io(format!("cannot start the node's thread: {error}")))?;
    Ok((handle, join))
}

fn nanos_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos() as u64)
}

/// Checks that the application's state reaches the log's compacted
/// prefix, so the log holds every entry it has yet to apply. A fresh
/// application at index 0 over a bootstrapped log (whose prefix, index 1,
/// carries only the membership) takes the empty state at index 1.
///
/// # Errors
/// [`StorageError::StateBehindLog`] if the state is older than the prefix.
fn catch_up_with_prefix<S: Storage, M: StateMachine>(
    storage: &S,
    machine: &mut M,
) -> Result<(), StorageError> {
    let prefix = storage.snapshot_meta();
    let applied = machine.applied_index();
    if applied >= prefix.index {
        return Ok(());
    }
    if applied == LogIndex(0) && prefix.index == LogIndex(1) {
        machine.begin_restore(prefix.index, prefix.term)?;
        return machine.finish_restore(prefix.index, Bytes::new());
    }
    Err(StorageError::StateBehindLog {
        applied,
        compacted: prefix.index,
    })
}

/// Wraps an application's failure to restore a chunk of the snapshot
/// `(index, term)` that starts at `cursor`. An I/O failure (a full disk)
/// stays one: it is the environment's, not the snapshot's.
fn restore_failed(index: LogIndex, term: Term, cursor: &[u8], cause: StorageError) -> StorageError {
    match cause {
        StorageError::Io(_) => cause,
        cause => StorageError::SnapshotRestore {
            index,
            term,
            position: describe_position(cursor),
            detail: cause.to_string(),
        },
    }
}

impl<S: Storage + Send + 'static, M: StateMachine> NodeTask<S, M> {
    async fn run(mut self, stop: Arc<Notify>) -> Result<(), StorageError> {
        let mut ticker = tokio::time::interval(self.options.tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.notified() => {
                    info!(group = self.options.group, node = self.options.raft.id.0, "stopped");
                    return Ok(());
                }
                (to, read) = self.snapshot_reads.next_done() => match read {
                    Ok(chunk) => {
                        self.metrics.snapshot_chunk_sent(chunk.data.len());
                        self.node.snapshot_chunk_read(to, chunk);
                    }
                    Err(_) => self.node.snapshot_read_failed(to),
                },
                _ = ticker.tick() => self.node.tick(),
                Some(message) = self.inbound.recv() => {
                    self.node.step(message);
                    while let Ok(message) = self.inbound.try_recv() {
                        self.node.step(message);
                    }
                }
                request = self.requests.recv() => match request {
                    Some(request) => {
                        self.handle_request(request);
                        while let Ok(request) = self.requests.try_recv() {
                            self.handle_request(request);
                        }
                    }
                    None => {
                        info!(group = self.options.group, node = self.options.raft.id.0, "every handle dropped, stopping");
                        return Ok(());
                    }
                },
            }
            if let Err(failure) = self.process_readies() {
                error!(group = self.options.group, node = self.options.raft.id.0, %failure, "storage failed, node stops");
                return Err(failure);
            }
        }
    }

    fn handle_request(&mut self, request: Request<M::Output>) {
        match request {
            Request::Propose {
                data,
                queued_bytes,
                reply,
            } => {
                drop(queued_bytes);
                let bytes = data.len() as u64;
                // Only a leader's budget matters: elsewhere the proposal is
                // refused as NotLeader, with a hint, whatever is pending.
                let leading = self.last_role == Role::Leader;
                let over_bytes = !self.proposals.is_empty()
                    && self.proposal_bytes + bytes > self.options.proposal_bytes_in_flight_max;
                if leading
                    && (self.proposals.len() >= self.options.proposals_in_flight_max || over_bytes)
                {
                    self.metrics.proposal(ProposalOutcome::Rejected);
                    let _ = reply.send(Err(ProposeError::Overloaded {
                        in_flight: self.proposals.len(),
                        bytes_in_flight: self.proposal_bytes,
                    }));
                    return;
                }
                match self.node.propose(data) {
                    Ok(id) => self.track_proposal(id.index, id.term, bytes, reply),
                    Err(error) => self.reject_proposal(reply, error),
                }
            }
            Request::ConfChange { change, reply } => match self.node.propose_conf_change(change) {
                Ok(id) => self.track_proposal(id.index, id.term, 0, reply),
                Err(error) => self.reject_proposal(reply, error),
            },
            Request::ReadIndex { reply } => {
                let context = self.next_read_context;
                self.next_read_context += 1;
                match self.node.read_index(context) {
                    Ok(()) => {
                        self.reads_confirming.insert(context, reply);
                    }
                    Err(error) => {
                        let _ = reply.send(Err(ProposeError::from_core(error)));
                    }
                }
            }
            Request::TransferLeader { target, reply } => {
                let _ = reply.send(
                    self.node
                        .transfer_leader(target)
                        .map_err(ProposeError::from_core),
                );
            }
        }
    }

    fn track_proposal(
        &mut self,
        index: LogIndex,
        term: Term,
        bytes: u64,
        reply: oneshot::Sender<ProposalReply<M::Output>>,
    ) {
        self.proposal_bytes += bytes;
        let pending = PendingProposal { term, bytes, reply };
        // A proposal of an earlier term at this index was cut from the log
        // (this node lost leadership, then won it back): it never applies.
        if let Some(replaced) = self.proposals.insert(index, pending) {
            self.proposal_bytes -= replaced.bytes;
            self.metrics.proposal(ProposalOutcome::Dropped);
            let leader_hint = self.node.leader();
            let _ = replaced
                .reply
                .send(Err(ProposeError::NotLeader { leader_hint }));
        }
    }

    fn reject_proposal(
        &mut self,
        reply: oneshot::Sender<ProposalReply<M::Output>>,
        error: crate::core::Error,
    ) {
        self.metrics.proposal(ProposalOutcome::Rejected);
        let _ = reply.send(Err(ProposeError::from_core(error)));
    }

    /// Handles every pending Ready.
    fn process_readies(&mut self) -> Result<(), StorageError> {
        while let Some(ready) = self.node.ready() {
            self.handle_ready(ready)?;
        }
        let status = self.node.status();
        self.metrics
            .observe_status(&status, self.node.storage().first_index());
        let leadership = Leadership::of(&status);
        self.leadership.send_if_modified(|known| {
            let changed = *known != leadership;
            *known = leadership;
            changed
        });
        self.status.send_replace(status);
        Ok(())
    }

    fn handle_ready(&mut self, mut ready: Ready) -> Result<(), StorageError> {
        // The leader's appends leave first: followers write in parallel.
        let early = ready.take_early_messages();
        if !early.is_empty() {
            self.metrics.messages_out(&early);
            self.transport.send(early);
        }
        let finishing = self.restore_chunks(&mut ready.restore_chunks)?;
        let batch = ready.persist_batch();
        if !batch.is_empty() {
            let synced = batch.must_sync(&self.node.storage().hard_state());
            let started = Instant::now();
            self.node.storage_mut().persist(&batch)?;
            if synced {
                self.metrics.fsync(started.elapsed());
            }
        }
        if let Some(last) = finishing {
            let meta = last.meta;
            self.metrics.snapshot_chunk_received(last.data.len());
            self.machine
                .finish_restore(meta.index, last.data)
                .map_err(|cause| restore_failed(meta.index, meta.term, &last.cursor, cause))?;
            assert_eq!(
                self.machine.applied_index(),
                meta.index,
                "a finished restore applies the snapshot's index"
            );
            info!(
                group = self.options.group,
                node = self.options.raft.id.0,
                index = meta.index.0,
                "restored a snapshot"
            );
            self.answer_proposals_replaced_by(meta.index);
            self.log_bytes_since_compaction = 0;
            self.applied_sizes.clear();
            self.last_conf_change = meta.index;
            self.metrics.snapshot_received();
        }
        if let Some(soft) = ready.soft_state {
            self.on_role_change(soft.role);
        }
        self.metrics.messages_out(&ready.messages);
        self.transport.send(ready.messages);
        self.apply(&ready.committed_entries)?;
        for request in std::mem::take(&mut ready.snapshot_requests) {
            if self.last_role != Role::Leader {
                // Stepped down in this Ready: its views are dropped, none
                // is pinned again.
                break;
            }
            let node = &self.node;
            let machine = &self.machine;
            self.snapshot_reads.serve(request, machine, || {
                let index = machine.applied_index();
                SnapshotMeta {
                    index,
                    term: node
                        .term_at(index)
                        .expect("the applied entry is in the log or its prefix"),
                    membership: node.status().membership,
                }
            });
        }
        self.reads_applying
            .extend(ready.read_states.iter().filter_map(|read| {
                self.reads_confirming
                    .remove(&read.context)
                    .map(|reply| (read.index, reply))
            }));
        self.node.advance();
        self.answer_reads();
        self.maybe_compact()
    }

    /// Hands the chunks of a restore to the application, except a last
    /// one, which it returns: that one finishes the restore only once the
    /// storage installed the snapshot (the Ready contract's order).
    fn restore_chunks(
        &mut self,
        chunks: &mut Vec<SnapshotChunk>,
    ) -> Result<Option<SnapshotChunk>, StorageError> {
        let last = chunks.pop_if(|chunk| chunk.last);
        assert!(
            chunks.iter().all(|chunk| !chunk.last),
            "a Ready's last chunk ends its restore chunks"
        );
        for chunk in chunks.drain(..) {
            self.begin_restore_at(&chunk)?;
            self.metrics.snapshot_chunk_received(chunk.data.len());
            let SnapshotChunk {
                meta,
                cursor,
                next_cursor,
                data,
                ..
            } = chunk;
            self.machine
                .restore_chunk(data, next_cursor)
                .map_err(|cause| restore_failed(meta.index, meta.term, &cursor, cause))?;
        }
        if let Some(last) = &last {
            self.begin_restore_at(last)?;
        }
        Ok(last)
    }

    /// Begins the restore `chunk` belongs to if it is its first chunk.
    fn begin_restore_at(&mut self, chunk: &SnapshotChunk) -> Result<(), StorageError> {
        if !chunk.cursor.is_empty() {
            return Ok(());
        }
        let meta = &chunk.meta;
        info!(
            group = self.options.group,
            node = self.options.raft.id.0,
            index = meta.index.0,
            "restoring a snapshot"
        );
        self.machine
            .begin_restore(meta.index, meta.term)
            .map_err(|cause| restore_failed(meta.index, meta.term, &chunk.cursor, cause))
    }

    fn on_role_change(&mut self, role: Role) {
        if self.last_role == Role::Leader && role != Role::Leader {
            self.snapshot_reads.clear();
            let leader_hint = self.node.status().leader;
            for (_, reply) in std::mem::take(&mut self.reads_confirming) {
                let _ = reply.send(Err(ProposeError::NotLeader { leader_hint }));
            }
        }
        if role == Role::Leader && self.last_role != Role::Leader {
            self.metrics.leader_change();
        }
        self.last_role = role;
    }

    /// Applies committed entries in runs that end at each membership
    /// entry (saved, synced, right after it applies), then answers the
    /// proposals the run decided.
    fn apply(&mut self, entries: &[Entry]) -> Result<(), StorageError> {
        let leader_hint = self.node.leader();
        self.log_bytes_since_compaction += entries.iter().map(Entry::size_bytes).sum::<u64>();
        self.applied_sizes.applied(entries);
        for run in entries.split_inclusive(|entry| entry.kind == EntryKind::ConfChange) {
            let outputs = self.machine.apply_batch(run);
            assert_eq!(outputs.len(), run.len(), "one answer per entry");
            if let Some(last) = run.last()
                && last.kind == EntryKind::ConfChange
            {
                self.last_conf_change = last.index;
                let membership = self.node.status().membership;
                self.node
                    .storage_mut()
                    .save_membership(&membership, last.index)?;
            }
            for (entry, output) in run.iter().zip(outputs) {
                self.answer_proposals(entry, output, leader_hint);
            }
        }
        Ok(())
    }

    /// Answers every proposal at or below `entry`'s index: the one at its
    /// index with the same term committed, the others were dropped.
    fn answer_proposals(&mut self, entry: &Entry, output: M::Output, leader_hint: Option<NodeId>) {
        while let Some(first) = self.proposals.first_key_value().map(|(&index, _)| index) {
            if first > entry.index {
                break;
            }
            let pending = self.proposals.remove(&first).expect("present");
            self.proposal_bytes -= pending.bytes;
            if first == entry.index && pending.term == entry.term {
                self.metrics.proposal(ProposalOutcome::Committed);
                let _ = pending.reply.send(Ok((entry.index, output)));
                return;
            }
            self.metrics.proposal(ProposalOutcome::Dropped);
            let _ = pending
                .reply
                .send(Err(ProposeError::NotLeader { leader_hint }));
        }
    }

    /// Answers every proposal at or below `index`, which a snapshot from
    /// the leader replaced before it applied here: each may or may not be
    /// in the snapshot.
    fn answer_proposals_replaced_by(&mut self, index: LogIndex) {
        while let Some(entry) = self.proposals.first_entry() {
            if *entry.key() > index {
                break;
            }
            let (index, pending) = entry.remove_entry();
            self.proposal_bytes -= pending.bytes;
            self.metrics.proposal(ProposalOutcome::Dropped);
            let _ = pending
                .reply
                .send(Err(ProposeError::OutcomeUnknown { index }));
        }
    }

    fn answer_reads(&mut self) {
        let applied = self.machine.applied_index();
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.reads_applying)
            .into_iter()
            .partition(|(index, _)| *index <= applied);
        self.reads_applying = waiting;
        for (index, reply) in ready {
            let _ = reply.send(Ok(index));
        }
    }

    /// Compacts the log once enough entries or bytes were applied since
    /// the last compaction (see [`NodeOptions::compact_interval_entries`]):
    /// drops the entries up to `compact_keep_entries` below the applied
    /// index, and further where those hold more bytes than
    /// [`AppliedSizes::bytes_floor`] keeps (for the followers that still
    /// need them, on a leader), but never below the last membership change
    /// applied. Nothing is
    /// copied: the application's state is the snapshot, and the synced
    /// compaction write makes it durable first (one database, one WAL).
    fn maybe_compact(&mut self) -> Result<(), StorageError> {
        let applied = self.machine.applied_index();
        let prefix = self.node.storage().snapshot_meta().index;
        let due = applied.0 >= prefix.0 + self.options.compact_interval_entries
            || self.log_bytes_since_compaction >= self.options.compact_interval_bytes;
        if !due || self.node.status().restoring {
            return Ok(());
        }
        let index = LogIndex(applied.0.saturating_sub(self.options.compact_keep_entries))
            .max(self.applied_sizes.bytes_floor(
                self.options.compact_keep_bytes,
                self.options.compact_keep_bytes_for_followers,
                self.node.followers_matched(),
            ))
            .max(self.last_conf_change)
            .min(applied);
        if index <= prefix {
            return Ok(());
        }
        self.log_bytes_since_compaction = 0;
        let membership = self.node.status().membership;
        self.node.storage_mut().compact(index, membership)?;
        self.log_compacted(index);
        Ok(())
    }

    fn log_compacted(&self, index: LogIndex) {
        info!(
            group = self.options.group,
            node = self.options.raft.id.0,
            index = index.0,
            "log compacted"
        );
    }
}
