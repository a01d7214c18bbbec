//! [`Backoff`]: capped exponential delays between attempts, always cut to
//! what is left of the caller's deadline, so no call outlives it.
//!
//! Invariant: every delay is in `[initial, max]` and never past the
//! deadline given to [`Backoff::next_delay`].

use std::time::Duration;

use tokio::time::Instant;

/// Delays between retries: `initial`, doubling up to `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    /// Returns a backoff starting at `initial` and capped at `max`.
    pub fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff { next: initial, max }
    }

    /// Returns the delay before the next attempt, at most what is left
    /// before `deadline`, and doubles the following one.
    pub fn next_delay(&mut self, deadline: Instant) -> Duration {
        let delay = self
            .next
            .min(deadline.saturating_duration_since(Instant::now()));
        self.next = (self.next * 2).min(self.max);
        delay
    }

    /// Sleeps for the next delay.
    pub async fn wait(&mut self, deadline: Instant) {
        tokio::time::sleep(self.next_delay(deadline)).await;
    }
}

impl Default for Backoff {
    /// Returns 20 ms doubling up to 1 s.
    fn default() -> Backoff {
        Backoff::new(Duration::from_millis(20), Duration::from_secs(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Delays double up to the cap and never run past the deadline.
    #[tokio::test]
    async fn delays_double_to_the_cap_and_respect_the_deadline() {
        let mut backoff = Backoff::new(Duration::from_millis(10), Duration::from_millis(40));
        let far = Instant::now() + Duration::from_secs(60);
        let delays: Vec<_> = (0..4).map(|_| backoff.next_delay(far)).collect();
        assert_eq!(delays, [10, 20, 40, 40].map(Duration::from_millis).to_vec());
        assert_eq!(backoff.next_delay(Instant::now()), Duration::ZERO);
    }
}
