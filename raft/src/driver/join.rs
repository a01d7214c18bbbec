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
    /// Taken when the handle is dropped, to wait for the thread.
    thread: Option<std::thread::JoinHandle<()>>,
}

impl NodeJoinHandle {
    /// Runs `node` on a new thread named `name`, handing it the stop
    /// signal to listen to; what it returns is the handle's outcome. The
    /// closure must drop the node's state before it returns.
    pub(crate) fn spawn(
        name: String,
        node: impl FnOnce(Arc<Notify>) -> Result<(), StorageError> + Send + 'static,
    ) -> std::io::Result<NodeJoinHandle> {
        let stop = Arc::new(Notify::new());
        let (sender, outcome) = oneshot::channel();
        let signal = stop.clone();
        let thread = std::thread::Builder::new().name(name).spawn(move || {
            let _ = sender.send(node(signal));
        })?;
        Ok(NodeJoinHandle {
            stop,
            outcome,
            thread: Some(thread),
        })
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use super::*;

    /// A node that waits for its stop signal, then records that its state
    /// was dropped.
    fn stoppable(dropped: Arc<AtomicBool>) -> NodeJoinHandle {
        NodeJoinHandle::spawn("test-node".into(), move |stop| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("runtime");
            runtime.block_on(stop.notified());
            // Slow to close, like a database flushing on shutdown.
            std::thread::sleep(Duration::from_millis(50));
            dropped.store(true, Ordering::SeqCst);
            Ok(())
        })
        .expect("thread")
    }

    #[tokio::test]
    async fn abort_resolves_after_the_node_closed() {
        let dropped = Arc::new(AtomicBool::new(false));
        let handle = stoppable(dropped.clone());
        handle.abort();
        let outcome = tokio::time::timeout(Duration::from_secs(10), handle)
            .await
            .expect("the node stops before the deadline");
        assert_eq!(outcome.map(|result| result.is_ok()), Ok(true));
        assert!(dropped.load(Ordering::SeqCst), "state closed first");
    }

    #[test]
    fn dropping_the_handle_stops_the_node_and_waits_for_it() {
        let dropped = Arc::new(AtomicBool::new(false));
        drop(stoppable(dropped.clone()));
        assert!(dropped.load(Ordering::SeqCst), "closed when drop returns");
    }

    #[tokio::test]
    async fn a_panicking_node_resolves_as_panicked() {
        let handle =
            NodeJoinHandle::spawn("test-node".into(), |_| panic!("node bug")).expect("thread");
        let outcome = tokio::time::timeout(Duration::from_secs(10), handle)
            .await
            .expect("resolves before the deadline");
        assert_eq!(outcome.map(|result| result.is_ok()), Err(NodePanicked));
    }
}
