//! A budget of bytes shared by the producers of one bounded queue: each
//! queued item holds a permit for its size until it leaves the queue, so
//! what waits in the queue never passes the budget in bytes.
//!
//! Invariants:
//! - Taking never waits: an item that does not fit is refused at once.
//! - An item larger than the whole budget takes all of it, so it passes
//!   when nothing else holds any (no item is refused forever).
//! - The budget counts in permits of one byte, at most `u32::MAX` and the
//!   semaphore's own maximum; a larger budget is clamped to that.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A clonable byte budget (clones share it).
#[derive(Clone, Debug)]
pub(crate) struct ByteBudget {
    permits: Arc<Semaphore>,
    /// The budget in permits.
    total: u32,
}

impl ByteBudget {
    /// Returns a budget of `bytes` (at least 1).
    pub(crate) fn new(bytes: u64) -> ByteBudget {
        let ceiling = u32::try_from(Semaphore::MAX_PERMITS).unwrap_or(u32::MAX);
        let total = u32::try_from(bytes.max(1)).unwrap_or(u32::MAX).min(ceiling);
        ByteBudget {
            permits: Arc::new(Semaphore::new(total as usize)),
            total,
        }
    }

    /// Takes `bytes` of the budget (at least 1, at most all of it) for as
    /// long as the returned permit lives, or `None` if they are not free.
    pub(crate) fn try_take(&self, bytes: u64) -> Option<OwnedSemaphorePermit> {
        let wanted = u32::try_from(bytes)
            .unwrap_or(u32::MAX)
            .clamp(1, self.total);
        self.permits.clone().try_acquire_many_owned(wanted).ok()
    }

    /// Returns the bytes taken now.
    pub(crate) fn in_use(&self) -> u64 {
        u64::from(self.total) - self.permits.available_permits() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_what_fits_and_lets_one_oversized_item_pass_alone() {
        let budget = ByteBudget::new(100);
        let first = budget.try_take(60).expect("fits");
        assert!(budget.try_take(60).is_none(), "does not fit beside it");
        assert_eq!(budget.in_use(), 60);
        drop(first);
        let huge = budget
            .try_take(1_000)
            .expect("alone, an oversized item passes");
        assert_eq!(budget.in_use(), 100);
        assert!(
            budget.try_take(0).is_none(),
            "an empty item still takes a byte"
        );
        drop(huge);
        assert_eq!(budget.in_use(), 0);
    }
}
