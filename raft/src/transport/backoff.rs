//! Exponential backoff with jitter between reconnection attempts to a peer.
//!
//! Invariants:
//! - Every delay lies in `[base / 2, base]`, where `base` starts at the
//!   initial delay, doubles after each attempt and never exceeds the maximum
//!   ("equal jitter": never zero, so a flapping peer is not hammered, and
//!   spread so that replicas do not reconnect in lock step).
//! - The jitter comes from a RNG seeded by the caller (no `thread_rng`), so
//!   a run can be replayed.

use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// The delays between attempts to reach one peer.
#[derive(Debug)]
pub(crate) struct Backoff {
    initial: Duration,
    max: Duration,
    /// Invariant: `initial <= base <= max` (when `initial <= max`).
    base: Duration,
    rng: SmallRng,
}

impl Backoff {
    /// Returns a backoff starting at `initial` and doubling up to `max`,
    /// with jitter drawn from a RNG seeded with `seed`.
    pub(crate) fn new(initial: Duration, max: Duration, seed: u64) -> Backoff {
        let initial = initial.min(max);
        Backoff {
            initial,
            max,
            base: initial,
            rng: SmallRng::seed_from_u64(seed),
        }
    }

    /// Returns the delay before the next attempt and doubles the base.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let full = u64::try_from(self.base.as_micros()).unwrap_or(u64::MAX);
        let delay = self.rng.random_range(full / 2..=full);
        self.base = (self.base * 2).min(self.max);
        Duration::from_micros(delay)
    }

    /// Starts again from the initial delay, after a stream that worked.
    pub(crate) fn reset(&mut self) {
        self.base = self.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_maximum_with_jitter() {
        let initial = Duration::from_millis(50);
        let max = Duration::from_secs(2);
        let mut backoff = Backoff::new(initial, max, 7);
        let mut base = initial;
        for _ in 0..12 {
            let delay = backoff.next_delay();
            assert!(
                delay >= base / 2 && delay <= base,
                "{delay:?} outside [{base:?}/2, {base:?}]"
            );
            base = (base * 2).min(max);
        }
        backoff.reset();
        assert!(backoff.next_delay() <= initial);
    }

    #[test]
    fn same_seed_gives_same_delays() {
        let delays = |seed| {
            let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(2), seed);
            (0..8).map(|_| backoff.next_delay()).collect::<Vec<_>>()
        };
        assert_eq!(delays(3), delays(3));
        assert_ne!(delays(3), delays(4));
    }
}
