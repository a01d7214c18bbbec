//! The handle on a node's thread: stop it, and await how it ended.
//!
//! Each node runs on a thread of its own (a single-threaded tokio runtime),
//! so its synced writes block that thread only, never a worker that serves
//! gRPC for the process.
//!
//! Invariants:
//! - The handle resolves only after the node's state (storage, state
//!   machine) is dropped, so a caller that stops a node and awaits the
//!   handle can reopen its data dir at once.
//! - Dropping the handle stops the node, like [`NodeJoinHandle::abort`],
//!   and waits for its thread to end: no node thread outlives the handle
//!   that owns it, so none still holds a database open while the process
//!   exits (RocksDB aborts the process then).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::{Notify, oneshot};

use crate::core::StorageError;

/// The node's thread ended without reporting: it panicked (its message is
/// in the process's standard error).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the raft node thread panicked (its message is on standard error)")]
pub struct NodePanicked;

/// How a node ended: `Ok(Ok(()))` when stopped or every handle dropped,
/// `Ok(Err(_))` when storage failed, `Err(NodePanicked)` on a panic.
pub type NodeOutcome = Result<Result<(), StorageError>, NodePanicked>;

/// Owns a running node's thread. Await it for the node's outcome.
#[derive(Debug)]
pub struct NodeJoinHandle {
    stop: Arc<Notify>,
    outcome: oneshot::Receiver<Result<(), StorageError>>,
    /// Set by [`NodeJoinHandle::attach`] once the thread runs.
    thread: Option<std::thread::JoinHandle<()>>,
}

impl NodeJoinHandle {
    /// Returns the handle and the two ends the node's thread keeps: the
    /// stop signal it listens to and the sender of its outcome.
    pub(crate) fn new() -> (
        NodeJoinHandle,
        Arc<Notify>,
        oneshot::Sender<Result<(), StorageError>>,
    ) {
        let stop = Arc::new(Notify::new());
        let (sender, outcome) = oneshot::channel();
        let handle = NodeJoinHandle {
            stop: stop.clone(),
            outcome,
            thread: None,
        };
        (handle, stop, sender)
    }

    /// Records the node's thread, which dropping the handle waits for.
    pub(crate) fn attach(&mut self, thread: std::thread::JoinHandle<()>) {
        self.thread = Some(thread);
    }

    /// Asks the node to stop at its next wake-up, as a crash would: what
    /// it persisted stays, nothing more is written. Await the handle to
    /// know it has stopped.
    pub fn abort(&self) {
        self.stop.notify_one();
    }
}

impl Drop for NodeJoinHandle {
    fn drop(&mut self) {
        self.abort();
        if let Some(thread) = self.thread.take()
            && thread.thread().id() != std::thread::current().id()
        {
            // The node stops at its next wake-up, which the stop signal
            // makes immediate; a panic was reported on standard error.
            let _ = thread.join();
        }
    }
}

impl Future for NodeJoinHandle {
    type Output = NodeOutcome;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<NodeOutcome> {
        Pin::new(&mut self.outcome)
            .poll(cx)
            .map(|received| received.map_err(|_| NodePanicked))
    }
}
