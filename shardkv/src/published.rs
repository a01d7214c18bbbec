//! A value that one writer changes together with writes to storage, and
//! that many readers use with what they read from that storage, without a
//! storage snapshot: a sequence lock. A read learns whether a change
//! overlapped it, and then its result is not used.
//!
//! The group store publishes the shard table this way, so a Get routes
//! with the published table and reads its key straight from RocksDB: a
//! read that no change overlapped saw the table storage held all along,
//! the one consistent view DESIGN.md asks for ("Reconfiguration in a
//! group"), without a RocksDB snapshot and two `meta` reads per Get.
//!
//! Invariants:
//! - One writer: only the [`Publisher`] changes the value, and only
//!   through a [`Change`] begun before its storage writes.
//! - The generation is odd from a change's beginning until it publishes
//!   its value; a change dropped unpublished (its writes failed) leaves it
//!   odd until the next change publishes, so no read succeeds meanwhile.
//! - [`Published::read`] returns a result only if the generation was even
//!   and the same before and after it: no change began or published while
//!   it read, so no change's writes landed while it read, and the value
//!   it used is the one published after the last change before it.
//! - Every publication marks each [`Published::subscribe`] receiver
//!   changed, after the new value is in place.

use std::sync::atomic::{AtomicU64, Ordering, fence};
use std::sync::{Arc, PoisonError, RwLock};

use tokio::sync::watch;

/// The shared part: the value, its generation, and the signal of each
/// publication.
struct Shared<T> {
    generation: AtomicU64,
    value: RwLock<Arc<T>>,
    publications: watch::Sender<()>,
}

/// The writer's side, owned by whatever writes the storage.
pub struct Publisher<T> {
    shared: Arc<Shared<T>>,
}

/// The readers' side.
pub struct Published<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Clone for Published<T> {
    fn clone(&self) -> Self {
        Published {
            shared: Arc::clone(&self.shared),
        }
    }
}

/// A change under way: begun before its storage writes, published after.
#[must_use = "a change left unpublished keeps every read failing"]
pub struct Change<'a, T> {
    shared: &'a Shared<T>,
}

/// Returns the two sides of `value`, published as the storage holds it now.
pub fn publish<T>(value: T) -> (Publisher<T>, Published<T>) {
    let shared = Arc::new(Shared {
        generation: AtomicU64::new(0),
        value: RwLock::new(Arc::new(value)),
        publications: watch::Sender::new(()),
    });
    (
        Publisher {
            shared: Arc::clone(&shared),
        },
        Published { shared },
    )
}

impl<T> Publisher<T> {
    /// Begins a change: call before the storage writes it covers.
    pub fn begin(&mut self) -> Change<'_, T> {
        let generation = self.shared.generation.load(Ordering::Relaxed);
        if generation.is_multiple_of(2) {
            self.shared
                .generation
                .store(generation + 1, Ordering::SeqCst);
        }
        // Storage writes that follow are ordered after the odd generation
        // for any reader that sees them.
        fence(Ordering::Release);
        Change {
            shared: &self.shared,
        }
    }
}

impl<T> Change<'_, T> {
    /// Publishes `value`, what storage holds now that the change's writes
    /// are done, and ends the change.
    pub fn publish(self, value: T) {
        *self
            .shared
            .value
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(value);
        self.shared.generation.fetch_add(1, Ordering::Release);
        self.shared.publications.send_replace(());
    }
}

impl<T> Published<T> {
    /// Returns a receiver marked changed by every publication after this
    /// call (for a task that acts when the value changes).
    pub fn subscribe(&self) -> watch::Receiver<()> {
        self.shared.publications.subscribe()
    }

    /// Runs `read` with the published value (and whatever it reads from
    /// storage) and returns its result, or `None` if a change overlapped
    /// it: then the caller reads another way.
    pub fn read<R>(&self, read: impl FnOnce(&T) -> R) -> Option<R> {
        let before = self.shared.generation.load(Ordering::Acquire);
        if !before.is_multiple_of(2) {
            return None;
        }
        let value = Arc::clone(
            &self
                .shared
                .value
                .read()
                .unwrap_or_else(PoisonError::into_inner),
        );
        let result = read(&value);
        // What `read` loaded is ordered before the second look.
        fence(Ordering::Acquire);
        let after = self.shared.generation.load(Ordering::Relaxed);
        (after == before).then_some(result)
    }
}

#[cfg(test)]
#[path = "published_test.rs"]
mod tests;
