//! The leader's side of snapshot transfers: one pinned view of the
//! application's state per follower that needs a snapshot, read in chunks
//! on the blocking pool (never on the node's thread) as the core asks,
//! the chunks handed back to the core through a channel.
//!
//! Invariants:
//! - A view is pinned on the node's thread, between Readies, when the core
//!   asks for a new one: it is the state at the applied index, and its
//!   metadata (index, term, membership) is taken at that same moment.
//! - A read answers for the view it was asked of: a read of a view that
//!   was replaced or released fails, and the core starts over.
//! - Views are dropped when the core releases them or the node stops
//!   leading, so no view pins old versions of the state for long.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::mpsc;
use tracing::warn;

use crate::core::{
    LogIndex, NodeId, SnapshotChunk, SnapshotMeta, SnapshotRequest, StorageError, Term,
};
use crate::driver::state_machine::{SnapshotSource, StateMachine};

/// The answer to one read: the chunk, or why there is none.
pub(crate) type ReadResult = (NodeId, Result<SnapshotChunk, StorageError>);

struct PinnedView {
    meta: SnapshotMeta,
    source: Arc<Mutex<Box<dyn SnapshotSource>>>,
}

/// The pinned views of one leader and the reads in flight.
pub(crate) struct SnapshotReads {
    views: HashMap<NodeId, PinnedView>,
    chunk_bytes: u64,
    done_sender: mpsc::UnboundedSender<ReadResult>,
    done: mpsc::UnboundedReceiver<ReadResult>,
}

impl SnapshotReads {
    /// Returns a reader of chunks of about `chunk_bytes`.
    pub(crate) fn new(chunk_bytes: u64) -> SnapshotReads {
        let (done_sender, done) = mpsc::unbounded_channel();
        SnapshotReads {
            views: HashMap::new(),
            chunk_bytes,
            done_sender,
            done,
        }
    }

    /// Serves one request of the core. `meta_now` describes the state the
    /// application holds now (its applied index, that entry's term and the
    /// membership in force), for a view pinned now.
    pub(crate) fn serve<M: StateMachine>(
        &mut self,
        request: SnapshotRequest,
        machine: &M,
        meta_now: impl FnOnce() -> SnapshotMeta,
    ) {
        match request {
            SnapshotRequest::Release { to } => {
                self.views.remove(&to);
            }
            SnapshotRequest::Read {
                to,
                snapshot,
                cursor,
            } => {
                if snapshot.is_none() {
                    self.views.remove(&to);
                    match machine.snapshot_source() {
                        Ok(source) => {
                            let view = PinnedView {
                                meta: meta_now(),
                                source: Arc::new(Mutex::new(source)),
                            };
                            self.views.insert(to, view);
                        }
                        Err(error) => {
                            let _ = self.done_sender.send((to, Err(error)));
                            return;
                        }
                    }
                }
                self.read(to, snapshot, cursor);
            }
        }
    }

    fn read(&self, to: NodeId, snapshot: Option<(LogIndex, Term)>, cursor: Bytes) {
        let view = self.views.get(&to).filter(|view| {
            snapshot.is_none_or(|pinned| pinned == (view.meta.index, view.meta.term))
        });
        let Some(view) = view else {
            let gone = StorageError::SnapshotUnavailable(snapshot.map_or(LogIndex(0), |s| s.0));
            let _ = self.done_sender.send((to, Err(gone)));
            return;
        };
        let (meta, source) = (view.meta.clone(), view.source.clone());
        let (done, bytes_max) = (self.done_sender.clone(), self.chunk_bytes);
        tokio::task::spawn_blocking(move || {
            let mut source = source
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let result = source.read(&cursor, bytes_max).map(|piece| SnapshotChunk {
                meta,
                cursor,
                next_cursor: piece.next_cursor,
                data: piece.data,
                last: piece.last,
            });
            if let Err(error) = &result {
                warn!(to = to.0, %error, "reading a snapshot chunk failed");
            }
            let _ =
                done.send(result.map_or_else(|error| (to, Err(error)), |chunk| (to, Ok(chunk))));
        });
    }

    /// Drops every view (the node stopped leading).
    pub(crate) fn clear(&mut self) {
        self.views.clear();
    }

    /// Waits for the next finished read.
    pub(crate) async fn next_done(&mut self) -> ReadResult {
        self.done
            .recv()
            .await
            .expect("the reader holds a sender, so the channel stays open")
    }
}
