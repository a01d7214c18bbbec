//! A fault-injecting [`Transport`] wrapper for tests, in the manner of
//! TiKV's transport filters: [`FaultyTransport`] drops, loses or delays
//! the messages one node sends, as its shared [`Faults`] handle says at the
//! moment of sending.
//!
//! Invariants:
//! - Faults act on the sending side only, so a partition is one-way: a
//!   two-way partition between nodes A and B partitions B in A's faults and
//!   A in B's.
//! - Messages to a partitioned peer are all dropped; otherwise each message
//!   is lost with the loss probability, drawn from a RNG seeded by the test
//!   (no `thread_rng`), and what remains is delivered after the delay.
//! - Messages delivered with the same delay keep their order; changing the
//!   delay may reorder messages sent before the change with those after it,
//!   as a real network may.
//! - [`Transport::send`] never blocks: a delay is served by a tokio task.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::runtime::Handle;
use tracing::debug;

use crate::core::{Message, NodeId};
use crate::transport::Transport;

/// The faults in force, behind the handle's lock.
#[derive(Debug)]
struct FaultState {
    /// Peers every message to which is dropped.
    partitioned: BTreeSet<NodeId>,
    /// Invariant: `0.0 <= loss <= 1.0`.
    loss: f64,
    delay: Duration,
    rng: SmallRng,
    dropped: u64,
}

/// A shared handle on the faults of one [`FaultyTransport`]; clones control
/// the same transport, so a test keeps one while the node owns the other.
#[derive(Clone, Debug)]
pub struct Faults {
    state: Arc<Mutex<FaultState>>,
}

impl Faults {
    /// Returns a handle with no faults, whose random losses are drawn from
    /// a RNG seeded with `seed`.
    pub fn new(seed: u64) -> Faults {
        let state = FaultState {
            partitioned: BTreeSet::new(),
            loss: 0.0,
            delay: Duration::ZERO,
            rng: SmallRng::seed_from_u64(seed),
            dropped: 0,
        };
        Faults {
            state: Arc::new(Mutex::new(state)),
        }
    }

    /// Drops every message to these peers from now on (added to any peers
    /// already partitioned).
    pub fn partition(&self, peers: impl IntoIterator<Item = NodeId>) {
        self.lock().partitioned.extend(peers);
    }

    /// Removes every fault: no partition, no loss, no delay.
    pub fn heal(&self) {
        let mut state = self.lock();
        state.partitioned.clear();
        state.loss = 0.0;
        state.delay = Duration::ZERO;
    }

    /// Loses each message with `probability` (clamped to `[0, 1]`).
    pub fn set_loss(&self, probability: f64) {
        self.lock().loss = probability.clamp(0.0, 1.0);
    }

    /// Holds every delivered message for `delay` before passing it on.
    pub fn set_delay(&self, delay: Duration) {
        self.lock().delay = delay;
    }

    /// Returns how many messages the faults have dropped so far.
    pub fn dropped(&self) -> u64 {
        self.lock().dropped
    }

    /// Returns the messages that survive the faults and the delay to apply.
    fn apply(&self, messages: Vec<Message>) -> (Vec<Message>, Duration) {
        let mut state = self.lock();
        let total = messages.len();
        let loss = state.loss;
        let mut kept = Vec::with_capacity(total);
        for message in messages {
            let lost = loss > 0.0 && state.rng.random_bool(loss);
            if !lost && !state.partitioned.contains(&message.to) {
                kept.push(message);
            }
        }
        state.dropped += (total - kept.len()) as u64;
        (kept, state.delay)
    }

    /// Locks the state; every update is a single assignment, so a poisoned
    /// lock still guards a consistent state.
    fn lock(&self) -> MutexGuard<'_, FaultState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Wraps a transport and applies [`Faults`] to everything sent through it.
pub struct FaultyTransport<T: Transport> {
    inner: Arc<T>,
    faults: Faults,
}

impl<T: Transport> FaultyTransport<T> {
    /// Returns `inner` wrapped, obeying `faults`.
    pub fn new(inner: T, faults: Faults) -> FaultyTransport<T> {
        FaultyTransport {
            inner: Arc::new(inner),
            faults,
        }
    }

    /// Returns a handle on this transport's faults.
    pub fn faults(&self) -> Faults {
        self.faults.clone()
    }

    /// Returns the wrapped transport.
    pub fn inner(&self) -> &T {
        &self.inner
    }
}

impl<T: Transport> Transport for FaultyTransport<T> {
    fn send(&self, messages: Vec<Message>) {
        let (kept, delay) = self.faults.apply(messages);
        if kept.is_empty() {
            return;
        }
        if delay.is_zero() {
            self.inner.send(kept);
            return;
        }
        match Handle::try_current() {
            Ok(runtime) => {
                let inner = self.inner.clone();
                runtime.spawn(async move {
                    tokio::time::sleep(delay).await;
                    inner.send(kept);
                });
            }
            Err(_) => {
                debug!("no tokio runtime to delay messages on, sending at once");
                self.inner.send(kept);
            }
        }
    }

    fn set_peer(&self, id: NodeId, address: String) {
        self.inner.set_peer(id, address);
    }

    fn remove_peer(&self, id: NodeId) {
        self.inner.remove_peer(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{MessageBody, Term};

    /// Records what reaches it.
    #[derive(Default)]
    struct Recorder {
        sent: Mutex<Vec<Message>>,
    }

    impl Transport for Recorder {
        fn send(&self, messages: Vec<Message>) {
            self.sent.lock().expect("not poisoned").extend(messages);
        }
        fn set_peer(&self, _: NodeId, _: String) {}
        fn remove_peer(&self, _: NodeId) {}
    }

    fn to(peer: u64) -> Message {
        Message {
            from: NodeId(1),
            to: NodeId(peer),
            term: Term(1),
            body: MessageBody::TimeoutNow,
        }
    }

    fn received(transport: &FaultyTransport<Recorder>) -> Vec<u64> {
        let sent = transport.inner().sent.lock().expect("not poisoned");
        sent.iter().map(|message| message.to.0).collect()
    }

    #[test]
    fn partition_drops_only_partitioned_peers_until_healed() {
        let faults = Faults::new(1);
        let transport = FaultyTransport::new(Recorder::default(), faults.clone());
        faults.partition([NodeId(2)]);
        transport.send(vec![to(2), to(3), to(2)]);
        assert_eq!(received(&transport), vec![3]);
        faults.heal();
        transport.send(vec![to(2)]);
        assert_eq!(received(&transport), vec![3, 2]);
        assert_eq!(faults.dropped(), 2);
    }

    #[test]
    fn loss_drops_about_its_share_reproducibly() {
        let run = |seed| {
            let faults = Faults::new(seed);
            faults.set_loss(0.3);
            let transport = FaultyTransport::new(Recorder::default(), faults.clone());
            transport.send((0..1000).map(|_| to(2)).collect());
            faults.dropped()
        };
        let dropped = run(9);
        assert!(
            (200..400).contains(&dropped),
            "dropped {dropped} of 1000 at 30%"
        );
        assert_eq!(run(9), dropped, "the same seed loses the same messages");
    }
}
