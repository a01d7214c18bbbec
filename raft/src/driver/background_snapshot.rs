//! A snapshot written on a thread of its own: the application's
//! [`SnapshotJob`] streams a pinned view of its state into the storage's
//! [`SnapshotWriter`] while the node goes on applying; the node installs
//! the result (and compacts its log) when the job is done.
//!
//! Invariants:
//! - [`BackgroundSnapshot::start`] returns only once the job has pinned its
//!   view, so the view is the state at the index the node had applied when
//!   it started the job (the node's thread alone applies entries).
//! - Dropping a `BackgroundSnapshot` cancels the job at its next chunk and
//!   waits for its thread, so no job outlives its node or keeps the
//!   database open; the data it wrote is an orphan the storage removes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::core::{LogIndex, Membership, StorageError};
use crate::driver::SnapshotJob;
use crate::storage::{SnapshotWriter, WrittenSnapshot};

/// A snapshot being written by another thread.
pub(crate) struct BackgroundSnapshot {
    /// The applied index of the pinned state.
    pub(crate) index: LogIndex,
    /// The membership as of `index`.
    pub(crate) membership: Membership,
    written: oneshot::Receiver<Result<WrittenSnapshot, StorageError>>,
    cancel: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl BackgroundSnapshot {
    /// Starts `job` on a thread named `name`, writing into `writer` at no
    /// more than `bytes_per_second` (0: unlimited), and waits until it has
    /// pinned the state at `index`.
    ///
    /// # Errors
    /// [`StorageError::Io`] if the thread cannot start.
    pub(crate) fn start(
        name: String,
        index: LogIndex,
        membership: Membership,
        job: Box<dyn SnapshotJob>,
        mut writer: SnapshotWriter,
        bytes_per_second: u64,
    ) -> Result<BackgroundSnapshot, StorageError> {
        let cancel = Arc::new(AtomicBool::new(false));
        let cancelled = cancel.clone();
        let (pinned_sender, pinned) = std::sync::mpsc::sync_channel(1);
        let (done, written) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name(name)
            .spawn(move || {
                let mut pace = Pace::new(bytes_per_second);
                let streamed = job.run(
                    &mut || {
                        let _ = pinned_sender.send(());
                    },
                    &mut |chunk| {
                        if cancelled.load(Ordering::Relaxed) {
                            return Err(StorageError::Io("snapshot cancelled".into()));
                        }
                        writer.write_chunk(&chunk)?;
                        pace.wrote(chunk.len() as u64, &cancelled);
                        Ok(())
                    },
                );
                let _ = done.send(streamed.and_then(|()| writer.finish()));
            })
            .map_err(|error| {
                StorageError::Io(format!("cannot start a snapshot thread: {error}"))
            })?;
        // A job that fails before pinning drops the sender: its error then
        // arrives through `written`.
        let _ = pinned.recv();
        Ok(BackgroundSnapshot {
            index,
            membership,
            written,
            cancel,
            thread: Some(thread),
        })
    }
}

impl Drop for BackgroundSnapshot {
    fn drop(&mut self) {
        self.cancel.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

/// Spreads a copy over time: the node's threads keep most of the CPU
/// while a snapshot is written, instead of competing with a burst.
struct Pace {
    bytes_per_second: u64,
    started: Instant,
    bytes: u64,
}

impl Pace {
    fn new(bytes_per_second: u64) -> Pace {
        Pace {
            bytes_per_second,
            started: Instant::now(),
            bytes: 0,
        }
    }

    /// Counts `bytes` more and waits until the rate allows them, or until
    /// `cancelled` is set (the canceller unparks this thread).
    fn wrote(&mut self, bytes: u64, cancelled: &AtomicBool) {
        self.bytes += bytes;
        if self.bytes_per_second == 0 {
            return;
        }
        let due = Duration::from_secs_f64(self.bytes as f64 / self.bytes_per_second as f64);
        while let Some(ahead) = due.checked_sub(self.started.elapsed()) {
            if ahead.is_zero() || cancelled.load(Ordering::Relaxed) {
                return;
            }
            std::thread::park_timeout(ahead);
        }
    }
}

/// Waits for the snapshot in progress, if any, to be written (never
/// returns when there is none).
pub(crate) async fn written(
    snapshot: &mut Option<BackgroundSnapshot>,
) -> Result<WrittenSnapshot, StorageError> {
    match snapshot {
        Some(snapshot) => (&mut snapshot.written)
            .await
            .unwrap_or_else(|_| Err(StorageError::Io("the snapshot thread panicked".into()))),
        None => std::future::pending().await,
    }
}
