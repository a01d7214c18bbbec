//! The application side of a node's Ready, as the simulated cluster plays
//! it (issue 15 §2, "compaction without copies, snapshots on demand"):
//! - a follower writes restore chunks into its application's state
//!   ([`AppState`](crate::sim::app::AppState)) behind a durable mark (steps 1 and 3 of the contract) and applies
//!   committed entries (step 5);
//! - a leader answers its core's snapshot reads from views it pins of its
//!   own state, late, failing or from a stale view as the profile draws;
//! - every node compacts its log below its applied index, without copying
//!   anything.
//!
//! Invariants:
//! - Every application write goes through the node's [`AppStore`](crate::sim::app::AppStore),
//!   which refuses one out of order (reported as `restore_safety`).
//! - A pinned view is the state at its index (checked against the
//!   reference when pinned), and is read only while the node leads.
//! - Compaction drops only applied entries and never the last membership
//!   change applied, so the membership it records is the one in force at
//!   its index; it is a synced write, so the application's state is
//!   durable up to there first.

use std::hash::Hash;

use bytes::Bytes;
use rand::Rng;

use super::{Cluster, NodeEvent};
use crate::core::storage::Storage;
use crate::core::{
    ConfChange, EntryKind, LogIndex, NodeId, Ready, SnapshotChunk, SnapshotMeta, SnapshotRequest,
    Term,
};
use crate::sim::app::{AppWrite, SimMachine};
use crate::sim::invariants::Violation;
use crate::sim::snapshot_reads::PinnedView;

impl<M: SimMachine> Cluster<M> {
    /// Step 1: writes the chunks but a last one (a chunk with an empty
    /// cursor begins a restore, a last one included); returns the last
    /// one, which finishes the restore after the persist.
    pub(super) fn restore_chunks(
        &mut self,
        id: NodeId,
        mut chunks: Vec<SnapshotChunk>,
    ) -> Result<Option<SnapshotChunk>, Violation> {
        let last = chunks.pop_if(|chunk| chunk.last);
        for chunk in chunks.into_iter().chain(last.iter().cloned()) {
            (chunk.meta.index, chunk.meta.term, &chunk.cursor[..]).hash(&mut self.trace);
            self.snapshot_stats.chunks_restored += 1;
            if chunk.cursor.is_empty() {
                let (index, term) = (chunk.meta.index, chunk.meta.term);
                self.write(id, AppWrite::BeginRestore { index, term })?;
                self.snapshot_stats.restores_begun += 1;
            }
            if !chunk.last {
                self.write(id, AppWrite::RestoreChunk(chunk))?;
            }
        }
        Ok(last)
    }

    /// Step 3: writes the last chunk, which drops the restore mark and
    /// makes the snapshot's index the applied index, synced (the node
    /// acknowledges the snapshot next); the state restored must be the
    /// reference state at that index.
    pub(super) fn finish_restore(
        &mut self,
        id: NodeId,
        last: SnapshotChunk,
    ) -> Result<(), Violation> {
        let meta = last.meta.clone();
        self.write(id, AppWrite::FinishRestore(last))?;
        self.snapshot_stats.restores_finished += 1;
        let sim = self.nodes.get_mut(&id).expect("live");
        sim.app.sync();
        sim.last_conf_change = meta.index;
        let digest = sim.app.state().machine.digest();
        self.invariants
            .check_state(id, meta.index, digest, "restored")?;
        self.invariants.observe_restored(id, meta.index, meta.term)
    }

    /// Makes one application write at `id`, or reports why the
    /// application refused it.
    fn write(&mut self, id: NodeId, write: AppWrite) -> Result<(), Violation> {
        let sim = self.nodes.get_mut(&id).expect("live");
        sim.app
            .write(write)
            .map_err(|why| self.invariants.refused_write(id, why))
    }

    /// Step 5: applies the committed entries, which must continue right
    /// after the application's applied index (after a restore finished in
    /// step 3, after its snapshot) and never reach an application that is
    /// restoring; a membership change is then saved with a synced write,
    /// as the driver does.
    pub(super) fn apply(&mut self, id: NodeId, ready: &Ready) -> Result<(), Violation> {
        let state = self.nodes[&id].app.state();
        if let Some(entry) = ready.committed_entries.first()
            && (state.restoring.is_some() || entry.index != state.applied.next())
        {
            return Err(self.invariants.refused_write(
                id,
                format!(
                    "the core handed entry {} to apply, the application is at {} (restoring {:?}, a snapshot restored in this Ready: {:?})",
                    entry.index,
                    state.applied,
                    state.restoring,
                    ready.snapshot.as_ref().map(|meta| (meta.index, meta.term))
                ),
            ));
        }
        for entry in &ready.committed_entries {
            self.invariants.observe_applied(id, entry)?;
            entry.index.hash(&mut self.trace);
            entry.term.hash(&mut self.trace);
            // The application sees the payloads of normal entries only.
            let data = match entry.kind {
                EntryKind::Normal => entry.data.clone(),
                EntryKind::ConfChange => Bytes::new(),
            };
            self.write(
                id,
                AppWrite::Apply {
                    index: entry.index,
                    data,
                },
            )?;
            if entry.kind == EntryKind::ConfChange {
                self.save_membership(id, entry.index);
                if let Some(ConfChange::RemoveNode(removed)) = ConfChange::decode(&entry.data) {
                    self.removals.entry(removed).or_insert(entry.index);
                }
            }
            self.events.push(NodeEvent::Applied {
                node: id,
                entry: entry.clone(),
            });
        }
        Ok(())
    }

    /// Saves the membership after the change at `index` (a synced write).
    fn save_membership(&mut self, id: NodeId, index: LogIndex) {
        let sim = self.nodes.get_mut(&id).expect("live");
        let core = sim.node.as_mut().expect("live");
        let membership = core.status().membership;
        core.storage_mut()
            .save_membership(&membership, index)
            .expect("memory storage");
        sim.app.sync();
        sim.last_conf_change = index;
    }

    /// Queues the Ready's snapshot requests, each due 0 to
    /// `snapshot_read_delay_ticks_max` ticks from now (in order).
    pub(super) fn queue_snapshot_requests(&mut self, id: NodeId, requests: Vec<SnapshotRequest>) {
        for request in requests {
            tracing::debug!(tick = self.now, node = id.0, ?request, "snapshot request");
            let delay_max = self.config.snapshot_read_delay_ticks_max;
            let delay = if delay_max > 0 {
                self.rng.random_range(0..=delay_max)
            } else {
                0
            };
            let sim = self.nodes.get_mut(&id).expect("live");
            sim.snapshot_reads.enqueue(self.now + delay, request);
        }
    }

    /// Serves the snapshot requests of `id` that are due, between two
    /// Readies; a node that no longer leads drops its views and requests
    /// (the driver does so on a step-down).
    pub(super) fn serve_snapshot_reads(&mut self, id: NodeId) -> Result<(), Violation> {
        loop {
            let now = self.now;
            let Some(sim) = self.nodes.get_mut(&id) else {
                return Ok(());
            };
            let Some(core) = sim.node.as_ref() else {
                return Ok(());
            };
            if core.leader() != Some(id) {
                sim.snapshot_reads.clear();
                return Ok(());
            }
            let Some(request) = sim.snapshot_reads.pop_due(now) else {
                return Ok(());
            };
            match request {
                SnapshotRequest::Release { to } => sim.snapshot_reads.release(to),
                SnapshotRequest::Read {
                    to,
                    snapshot,
                    cursor,
                } => self.serve_read(id, to, snapshot, cursor)?,
            }
        }
    }

    /// Answers one read: the chunk at `cursor` of the view pinned for
    /// `to` (pinning one first if `snapshot` is `None`), or a failure if
    /// the view is gone or not the one asked for, or the profile fails it.
    fn serve_read(
        &mut self,
        id: NodeId,
        to: NodeId,
        snapshot: Option<(LogIndex, Term)>,
        cursor: Bytes,
    ) -> Result<(), Violation> {
        if snapshot.is_none() {
            self.pin_view(id, to)?;
        }
        let fails = self.roll(self.config.snapshot_read_fail);
        let bytes_max = self.config.snapshot_chunk_bytes;
        let sim = self.nodes.get_mut(&id).expect("live");
        let chunk = sim
            .snapshot_reads
            .view(to)
            .filter(|view| {
                !fails && snapshot.is_none_or(|s| s == (view.meta.index, view.meta.term))
            })
            .and_then(|view| {
                let (data, next_cursor, last) = view.state.read_chunk(&cursor, bytes_max)?;
                Some(SnapshotChunk {
                    meta: view.meta.clone(),
                    cursor: cursor.clone(),
                    next_cursor,
                    data,
                    last,
                })
            });
        (to, &cursor[..], chunk.is_some()).hash(&mut self.trace);
        tracing::debug!(
            tick = self.now,
            node = id.0,
            to = to.0,
            cursor = ?cursor,
            read = chunk.is_some(),
            "snapshot read served"
        );
        if chunk.is_some() {
            self.snapshot_stats.chunks_read += 1;
        } else {
            self.snapshot_stats.reads_failed += 1;
        }
        let core = sim.node.as_mut().expect("live");
        match chunk {
            Some(chunk) => core.snapshot_chunk_read(to, chunk),
            None => core.snapshot_read_failed(to),
        }
        Ok(())
    }

    /// Pins a view of the leader's state at its applied index for `to`,
    /// unless the profile keeps the stale view already pinned for `to`.
    fn pin_view(&mut self, id: NodeId, to: NodeId) -> Result<(), Violation> {
        let pinned = self.nodes[&id].snapshot_reads.view(to).is_some();
        if pinned && self.roll(self.config.snapshot_read_stale) {
            self.snapshot_stats.stale_views += 1;
            return Ok(());
        }
        self.snapshot_stats.views_pinned += 1;
        let sim = self.nodes.get_mut(&id).expect("live");
        let core = sim.node.as_ref().expect("live");
        let state = sim.app.state();
        let term = core
            .term_at(state.applied)
            .filter(|_| state.restoring.is_none());
        let Some(term) = term else {
            return Err(self.invariants.refused_write(
                id,
                format!(
                    "a leader cannot pin its state: applied {}, restoring {:?}",
                    state.applied, state.restoring
                ),
            ));
        };
        let meta = SnapshotMeta {
            index: state.applied,
            term,
            membership: core.status().membership,
        };
        self.invariants
            .check_state(id, meta.index, state.machine.digest(), "pinned")?;
        let view = PinnedView {
            meta,
            state: state.machine.clone(),
        };
        sim.snapshot_reads.pin(to, view);
        Ok(())
    }

    /// Compacts the log of `id` once `compaction_interval` entries were
    /// applied past its compacted prefix: up to the applied index minus a
    /// drawn tail, but never below the last membership change applied.
    pub(super) fn maybe_compact(&mut self, id: NodeId) -> Result<(), Violation> {
        let interval = self.config.compaction_interval;
        let sim = &self.nodes[&id];
        let state = sim.app.state();
        let compacted = sim.storage().expect("live").snapshot_meta().index;
        if interval == 0 || state.restoring.is_some() || state.applied.0 < compacted.0 + interval {
            return Ok(());
        }
        let (applied, floor) = (state.applied, sim.last_conf_change);
        let tail_max = self.config.compaction_tail_max;
        let tail = if tail_max > 0 {
            self.rng.random_range(0..=tail_max)
        } else {
            0
        };
        let target = LogIndex(applied.0.saturating_sub(tail))
            .max(floor)
            .min(applied);
        if target <= compacted {
            return Ok(());
        }
        target.hash(&mut self.trace);
        self.snapshot_stats.compactions += 1;
        let sim = self.nodes.get_mut(&id).expect("live");
        let core = sim.node.as_mut().expect("live");
        let membership = core.status().membership;
        core.storage_mut()
            .compact(target, membership)
            .expect("an applied index is in the log");
        sim.app.sync();
        let state = sim.app.state();
        self.invariants.check_state(
            id,
            state.applied,
            state.machine.digest(),
            "compacted its log under",
        )?;
        self.invariants.check_state_covers_log(
            id,
            state.applied,
            false,
            target,
            "compacted its log",
        )
    }
}
