//! Snapshot transfer to followers that fell behind the compacted log
//! (§7): the leader streams the storage's latest snapshot in bounded chunks,
//! each checked by crc32; the follower stages chunks through its Ready and
//! installs the snapshot once the last one arrives.
//!
//! Invariants:
//! - Chunks are staged strictly in order from offset 0; a chunk that does
//!   not continue the staged data (or fails its crc32) is refused and the
//!   follower asks for the offset it expects.
//! - A follower that restarts mid-transfer resumes after the bytes it had
//!   staged durably (`InitialState::staged_snapshot`): the leader, which
//!   restarts its own side at offset 0, is told the offset to continue at.
//! - A snapshot at or below the follower's commit index is never installed:
//!   it would roll committed state back.
//! - A snapshot whose last entry the follower's log already holds is not
//!   installed either: the log is kept (entries after it may have been
//!   acknowledged) and only the commit index advances.

use tracing::{info, warn};

use crate::core::StorageError;
use crate::core::message::{Message, MessageBody};
use crate::core::progress::ProgressState;
use crate::core::raft::{IncomingSnapshot, Raft, Role};
use crate::core::types::{LogIndex, NodeId, SnapshotChunk, Term};
use crate::storage::Storage;

impl<S: Storage> Raft<S> {
    /// Leader: starts sending the latest snapshot to `to`.
    pub fn send_snapshot(&mut self, to: NodeId) {
        let meta = self.log.storage.snapshot_meta();
        let Some(progress) = self.progress.get_mut(&to) else {
            return;
        };
        info!(
            node = self.id.0,
            to = to.0,
            index = meta.index.0,
            "sending snapshot"
        );
        progress.become_snapshot(meta.index);
        self.send_snapshot_chunk(to);
    }

    /// Leader: sends the chunk at the offset `to` acknowledged last.
    pub fn send_snapshot_chunk(&mut self, to: NodeId) {
        let Some(progress) = self.progress.get(&to) else {
            return;
        };
        if progress.state != ProgressState::Snapshot {
            return;
        }
        let (index, offset) = (progress.pending_snapshot, progress.snapshot_offset);
        let meta = self.log.storage.snapshot_meta();
        let chunk =
            match self
                .log
                .storage
                .snapshot_chunk(index, offset, self.config.snapshot_chunk_bytes)
            {
                Ok(chunk) if meta.index == index => chunk,
                Ok(_) | Err(StorageError::SnapshotUnavailable(_)) => {
                    // A newer snapshot replaced the one being sent: start over.
                    self.send_snapshot(to);
                    return;
                }
                Err(error) => panic!("raft storage failed, stopping the node: {error}"),
            };
        let (data, last) = chunk;
        let crc32 = crc32fast::hash(&data);
        self.send(
            to,
            MessageBody::SnapshotChunk {
                meta,
                offset,
                data,
                crc32,
                last,
            },
        );
    }

    /// Leader: the follower acknowledged chunks up to `next_offset`.
    pub fn on_snapshot_chunk_response(
        &mut self,
        from: NodeId,
        snapshot_index: LogIndex,
        next_offset: u64,
    ) {
        if self.role != Role::Leader {
            return;
        }
        let Some(progress) = self.progress.get_mut(&from) else {
            return;
        };
        progress.recent_active = true;
        if progress.state != ProgressState::Snapshot || progress.pending_snapshot != snapshot_index
        {
            return;
        }
        if next_offset == progress.snapshot_offset && next_offset != 0 {
            return; // A duplicate acknowledgement: the next chunk is out.
        }
        progress.snapshot_offset = next_offset;
        self.send_snapshot_chunk(from);
    }

    /// Follower: stages one chunk, or installs the snapshot on the last.
    pub fn on_snapshot_chunk(&mut self, message: Message) {
        let MessageBody::SnapshotChunk {
            meta,
            offset,
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
        if meta.index <= self.log.committed {
            self.incoming_snapshot = None;
            let committed = self.log.committed;
            self.send_snapshot_done(from, committed);
            return;
        }
        if self.log.match_term(meta.index, meta.term) {
            // Our log already holds the snapshot's last entry, hence
            // everything before it: keep the log (entries after it may be
            // acknowledged already) and just learn the commit.
            self.incoming_snapshot = None;
            self.log.commit_to(meta.index);
            self.send_snapshot_done(from, meta.index);
            return;
        }
        self.stage_chunk(
            from,
            SnapshotChunk {
                meta,
                offset,
                data,
                last,
            },
            crc32,
        );
    }

    /// Follower: stages a chunk that continues the transfer (or refuses it
    /// with the offset expected), and installs the snapshot on the last.
    fn stage_chunk(&mut self, from: NodeId, chunk: SnapshotChunk, crc32: u32) {
        let expected = match &self.incoming_snapshot {
            Some(incoming) if incoming.meta == chunk.meta => incoming.next_offset,
            _ => 0,
        };
        let index = chunk.meta.index;
        if chunk.offset != expected || crc32fast::hash(&chunk.data) != crc32 {
            if chunk.offset == expected {
                warn!(
                    node = self.id.0,
                    index = index.0,
                    offset = chunk.offset,
                    "snapshot chunk failed its crc32"
                );
            }
            let response = MessageBody::SnapshotChunkResponse {
                snapshot_index: index,
                next_offset: expected,
            };
            self.send(from, response);
            return;
        }
        let next_offset = chunk.offset + chunk.data.len() as u64;
        let (meta, last) = (chunk.meta.clone(), chunk.last);
        self.snapshot_chunks.push(chunk);
        if !last {
            self.incoming_snapshot = Some(IncomingSnapshot { meta, next_offset });
            self.send(
                from,
                MessageBody::SnapshotChunkResponse {
                    snapshot_index: index,
                    next_offset,
                },
            );
            return;
        }
        self.incoming_snapshot = None;
        info!(
            node = self.id.0,
            index = index.0,
            term = meta.term.0,
            "installing snapshot"
        );
        self.membership = meta.membership.clone();
        self.log.restore(meta);
        self.send_snapshot_done(from, index);
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
