//! Snapshot transfer to followers that fell behind the compacted log
//! (§7). The snapshot is the application's own state, read on demand: the
//! leader asks its owner to pin a view of the state at the applied index
//! and to read it in bounded chunks, each positioned by an opaque cursor
//! (the application's keys) and checked by crc32; up to
//! `snapshot_chunks_in_flight` chunks travel at once. The follower hands
//! each chunk to its application, which writes it straight into its state
//! behind a durable "restoring" mark.
//!
//! Invariants:
//! - A follower restores chunks strictly in cursor order; a chunk that does
//!   not continue its restore (or fails its crc32) is refused, and the
//!   follower answers with the position it needs, so the leader resumes
//!   there (lost, reordered or duplicated chunks, a follower restarted
//!   mid-restore) or starts over (a different snapshot).
//! - While its application holds a partial state (`restoring`), a follower
//!   applies nothing, appends nothing, never campaigns, and answers every
//!   append and heartbeat with where its restore stands, so whichever node
//!   leads learns it needs a snapshot.
//! - A snapshot at or below the follower's commit index is never restored
//!   unless the follower is restoring: it would roll committed state back.
//! - A snapshot whose last entry the follower's log already holds is not
//!   restored either (unless restoring): the log is kept and only the
//!   commit index advances. When a restore installs such a snapshot, the
//!   entries after it stay (§7): some may have been acknowledged.

use bytes::Bytes;
use tracing::{info, warn};

use crate::core::message::{Message, MessageBody};
use crate::core::progress::{OutgoingSnapshot, ProgressState};
use crate::core::raft::{Raft, Role};
use crate::core::ready::SnapshotRequest;
use crate::core::storage::Storage;
use crate::core::types::{LogIndex, NodeId, RestorePoint, SnapshotChunk, SnapshotMeta, Term};

/// A transfer that stalled this many times in a row without progress, the
/// follower silent through the last one, is abandoned (its view released)
/// until the follower answers again.
const STALLS_BEFORE_GIVING_UP: u32 = 5;

/// Returns the crc32 a snapshot chunk carries: over its positions, its
/// last flag and its data (each length-prefixed), so a damaged position or
/// flag is refused like damaged data.
pub fn chunk_crc32(cursor: &[u8], next_cursor: &[u8], data: &[u8], last: bool) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    for part in [cursor, next_cursor, &[u8::from(last)][..], data] {
        hasher.update(&(part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    hasher.finalize()
}

impl<S: Storage> Raft<S> {
    /// Leader: starts a new snapshot transfer to `to` (from a new view).
    pub fn send_snapshot(&mut self, to: NodeId) {
        let Some(progress) = self.progress.get_mut(&to) else {
            return;
        };
        info!(node = self.id.0, to = to.0, "sending a snapshot");
        progress.become_snapshot();
        self.snapshot_requests.push(SnapshotRequest::Read {
            to,
            snapshot: None,
            cursor: Bytes::new(),
        });
    }

    /// Leader: the owner read a chunk for `to`; it goes out if it is the
    /// one the transfer waits for.
    pub fn on_snapshot_chunk_read(&mut self, to: NodeId, chunk: SnapshotChunk) {
        if self.role != Role::Leader {
            return;
        }
        let Some(outgoing) = self.outgoing_snapshot(to) else {
            return;
        };
        let expected = outgoing.reading.take();
        let pinned = (chunk.meta.index, chunk.meta.term);
        if expected.as_ref() != Some(&chunk.cursor)
            || outgoing.snapshot.is_some_and(|snapshot| snapshot != pinned)
        {
            // Superseded by a resume while it was read.
            self.maybe_read_next(to);
            return;
        }
        outgoing.snapshot = Some(pinned);
        // Only the follower's done (an append answer) acknowledges the last
        // chunk: its end position is never taken as an acknowledgement.
        let end = (!chunk.last).then(|| chunk.next_cursor.clone());
        outgoing.in_flight.push_back((chunk.cursor.clone(), end));
        if chunk.last {
            outgoing.read_all = true;
        } else {
            outgoing.next_read = chunk.next_cursor.clone();
        }
        let progress = self.progress.get_mut(&to).expect("checked above");
        progress.pending_snapshot = chunk.meta.index;
        let crc32 = chunk_crc32(&chunk.cursor, &chunk.next_cursor, &chunk.data, chunk.last);
        self.send(
            to,
            MessageBody::SnapshotChunk {
                meta: chunk.meta,
                cursor: chunk.cursor,
                next_cursor: chunk.next_cursor,
                data: chunk.data,
                crc32,
                last: chunk.last,
            },
        );
        self.maybe_read_next(to);
    }

    /// Leader: the owner could not read the view pinned for `to` (it is
    /// gone, or the read failed); the transfer starts over on the
    /// follower's next answer.
    pub fn on_snapshot_read_failed(&mut self, to: NodeId) {
        if self.role != Role::Leader {
            return;
        }
        if let Some(progress) = self.progress.get_mut(&to)
            && progress.state == ProgressState::Snapshot
        {
            warn!(node = self.id.0, to = to.0, "reading a snapshot failed");
            progress.become_probe();
            self.snapshot_requests.push(SnapshotRequest::Release { to });
        }
    }

    /// Leader: asks for the next chunk while the window has room.
    fn maybe_read_next(&mut self, to: NodeId) {
        let window = self.config.snapshot_chunks_in_flight;
        let Some(outgoing) = self.outgoing_snapshot(to) else {
            return;
        };
        if outgoing.reading.is_some() || outgoing.read_all || outgoing.in_flight.len() >= window {
            return;
        }
        let cursor = outgoing.next_read.clone();
        outgoing.reading = Some(cursor.clone());
        let snapshot = outgoing.snapshot;
        self.snapshot_requests.push(SnapshotRequest::Read {
            to,
            snapshot,
            cursor,
        });
    }

    fn outgoing_snapshot(&mut self, to: NodeId) -> Option<&mut OutgoingSnapshot> {
        self.progress
            .get_mut(&to)
            .filter(|progress| progress.state == ProgressState::Snapshot)
            .and_then(|progress| progress.outgoing.as_mut())
    }

    /// Leader: a follower restoring `(index, term)` needs the chunk at
    /// `next_cursor`.
    pub fn on_snapshot_chunk_response(
        &mut self,
        from: NodeId,
        index: LogIndex,
        term: Term,
        next_cursor: Bytes,
    ) {
        if self.role != Role::Leader {
            return;
        }
        let Some(progress) = self.progress.get_mut(&from) else {
            return;
        };
        progress.recent_active = true;
        if progress.state != ProgressState::Snapshot {
            // Its application holds a partial state: only a snapshot helps.
            // (Unless the answer is older than what it is known to hold: a
            // delayed acknowledgement of a transfer that completed.) At most
            // one transfer starts per heartbeat interval: the answers to an
            // abandoned transfer's chunks arrive in a burst.
            if index > progress.matched && !progress.snapshot_started {
                self.send_snapshot(from);
            }
            return;
        }
        let Some(outgoing) = progress.outgoing.as_mut() else {
            return;
        };
        outgoing.answered = true;
        if outgoing.snapshot != Some((index, term)) {
            // Still restoring another snapshot: ours has not reached it.
            return;
        }
        if let Some(acked) = outgoing
            .in_flight
            .iter()
            .position(|(_, end)| end.as_ref() == Some(&next_cursor))
        {
            outgoing.in_flight.drain(..=acked);
            outgoing.stalled_ticks = 0;
            outgoing.stalls = 0;
        } else if next_cursor != outgoing.acked_position() {
            // The follower needs an earlier (or later) position than the
            // chunks in flight: it lost some or restarted. Resume there.
            outgoing.resume_at(next_cursor);
        }
        self.maybe_read_next(from);
    }

    /// Leader: resumes transfers that made no progress for
    /// `snapshot_stall_ticks` (a chunk or its answer was lost).
    pub fn tick_snapshot_transfers(&mut self) {
        let stall_ticks = self.config.snapshot_stall_ticks;
        let (mut resumed, mut restarted, mut abandoned) = (Vec::new(), Vec::new(), Vec::new());
        for (&id, progress) in &mut self.progress {
            if progress.state != ProgressState::Snapshot {
                continue;
            }
            let Some(outgoing) = progress.outgoing.as_mut() else {
                continue;
            };
            outgoing.stalled_ticks += 1;
            if outgoing.stalled_ticks < stall_ticks {
                continue;
            }
            let position = outgoing.acked_position();
            let stalls = outgoing.stalls + 1;
            let answered = std::mem::take(&mut outgoing.answered);
            if stalls >= STALLS_BEFORE_GIVING_UP && !answered {
                // The follower is gone: stop pinning a view for it; its
                // next answer starts a new transfer.
                abandoned.push(id);
            } else if position.is_empty() && stalls >= 2 {
                // Nothing of this view was taken twice over (refused as
                // older than the follower's log?): a newer view may do.
                restarted.push(id);
            } else {
                outgoing.resume_at(position);
                outgoing.stalls = stalls;
                resumed.push(id);
            }
        }
        for id in resumed {
            self.maybe_read_next(id);
        }
        for id in restarted {
            self.send_snapshot(id);
        }
        for id in abandoned {
            warn!(node = self.id.0, to = id.0, "snapshot transfer abandoned");
            if let Some(progress) = self.progress.get_mut(&id) {
                progress.become_probe();
            }
            self.snapshot_requests
                .push(SnapshotRequest::Release { to: id });
        }
    }

    /// Follower: restores one chunk, or answers where its restore stands.
    pub fn on_snapshot_chunk(&mut self, message: Message) {
        let MessageBody::SnapshotChunk {
            meta,
            cursor,
            next_cursor,
            data,
            crc32,
            last,
        } = message.body
        else {
            unreachable!("on_snapshot_chunk takes snapshot chunks only");
        };
        let from = message.from;
        if self.role != Role::Follower {
            self.become_follower(self.term, Some(from));
        }
        self.leader = Some(from);
        self.election_elapsed = 0;
        if self.log.installing.is_some() {
            // A restore finished in the Ready being built: the storage has
            // not installed it yet, so nothing may begin on top (the leader
            // resends what is still needed).
            return;
        }
        if self.restoring.is_none() && self.has_snapshot(from, &meta) {
            return;
        }
        let same = self
            .restoring
            .as_ref()
            .is_some_and(|point| (point.index, point.term) == (meta.index, meta.term));
        if chunk_crc32(&cursor, &next_cursor, &data, last) != crc32 {
            warn!(
                node = self.id.0,
                index = meta.index.0,
                "snapshot chunk failed its crc32"
            );
            self.answer_restore_position(from, &meta, same);
            return;
        }
        if !same && !self.begin_restore(from, &meta, &cursor) {
            return;
        }
        let point = self.restoring.as_mut().expect("restoring");
        if cursor != point.next_cursor {
            self.send_restore_point(from);
            return;
        }
        point.next_cursor = next_cursor.clone();
        let chunk = SnapshotChunk {
            meta,
            cursor,
            next_cursor,
            data,
            last,
        };
        if last {
            self.finish_restore(from, chunk);
        } else {
            self.restore_chunks.push(chunk);
            self.send_restore_point(from);
        }
    }

    /// Follower, not restoring: answers a snapshot it needs no more (at
    /// or below its commit index, or whose last entry its log holds) and
    /// returns whether it did.
    fn has_snapshot(&mut self, from: NodeId, meta: &SnapshotMeta) -> bool {
        if meta.index <= self.log.committed {
            let committed = self.log.committed;
            self.send_snapshot_done(from, committed);
            return true;
        }
        if self.log.match_term(meta.index, meta.term) {
            // Our log already holds the snapshot's last entry, hence
            // everything before it: keep the log (entries after it may be
            // acknowledged already) and just learn the commit.
            self.log.commit_to(meta.index);
            self.send_snapshot_done(from, meta.index);
            return true;
        }
        false
    }

    /// Follower: starts restoring `meta` from the chunk at `cursor`, or
    /// answers with the position needed and returns false: only a first
    /// chunk starts a restore, and only of a snapshot that reaches the
    /// log's prefix (an older one could not continue it).
    fn begin_restore(&mut self, from: NodeId, meta: &SnapshotMeta, cursor: &[u8]) -> bool {
        if !cursor.is_empty() || meta.index < self.log.first_index().prev() {
            self.answer_restore_position(from, meta, false);
            return false;
        }
        info!(
            node = self.id.0,
            index = meta.index.0,
            term = meta.term.0,
            "restoring a snapshot"
        );
        self.restoring = Some(RestorePoint::beginning(meta.index, meta.term));
        true
    }

    /// Follower: the last chunk arrived; the snapshot replaces the log
    /// (the Ready installs it, then the application finishes).
    fn finish_restore(&mut self, from: NodeId, chunk: SnapshotChunk) {
        let meta = chunk.meta.clone();
        info!(
            node = self.id.0,
            index = meta.index.0,
            term = meta.term.0,
            "snapshot restored"
        );
        self.restore_chunks.push(chunk);
        self.restoring = None;
        self.membership = meta.membership.clone();
        let index = meta.index;
        self.log.install_snapshot(meta);
        self.send_snapshot_done(from, index);
    }

    /// Follower: answers a chunk it could not take with the position it
    /// needs: where its restore of that snapshot stands, or the beginning.
    fn answer_restore_position(&mut self, to: NodeId, meta: &SnapshotMeta, same: bool) {
        if same {
            self.send_restore_point(to);
            return;
        }
        self.send(
            to,
            MessageBody::SnapshotChunkResponse {
                snapshot_index: meta.index,
                snapshot_term: meta.term,
                next_cursor: Bytes::new(),
            },
        );
    }

    /// Follower: tells `to` where the restore in progress stands.
    pub fn send_restore_point(&mut self, to: NodeId) {
        let Some(point) = &self.restoring else {
            return;
        };
        let body = MessageBody::SnapshotChunkResponse {
            snapshot_index: point.index,
            snapshot_term: point.term,
            next_cursor: point.next_cursor.clone(),
        };
        self.send(to, body);
    }

    fn send_snapshot_done(&mut self, to: NodeId, index: LogIndex) {
        self.send(
            to,
            MessageBody::AppendResponse {
                rejected: false,
                index,
                hint_index: LogIndex(0),
                hint_term: Term(0),
            },
        );
    }
}
