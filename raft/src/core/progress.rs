//! The leader's view of one follower's log (raft-rs `Progress`).
//!
//! A follower is in one of three states:
//! - `Probe`: the leader does not know where the logs match; it sends one
//!   append at a time and waits for the answer (or a heartbeat response).
//! - `Replicate`: the logs match up to `matched`; the leader streams
//!   appends optimistically, up to the inflights window (pipelining).
//! - `Snapshot`: the entries the follower needs are compacted (or its
//!   application holds a partial restore); the leader streams a snapshot
//!   in chunks and sends no appends meanwhile.
//!
//! Invariants: `matched < next`; `outgoing` is set exactly in `Snapshot`.

use std::collections::VecDeque;

use bytes::Bytes;

use crate::core::inflights::Inflights;
use crate::core::types::{LogIndex, Term};

/// The leader's side of one snapshot transfer.
#[derive(Clone, Debug, Default)]
pub struct OutgoingSnapshot {
    /// The (index, term) of the view being sent, once its first chunk was
    /// read.
    pub snapshot: Option<(LogIndex, Term)>,
    /// The position of the chunk being read, if a read is outstanding.
    pub reading: Option<Bytes>,
    /// The position of the next chunk to read.
    pub next_read: Bytes,
    /// Whether the last chunk was read.
    pub read_all: bool,
    /// Chunks sent and not acknowledged, as (start, end) positions, in
    /// order; the last chunk has no end (only the follower's done
    /// acknowledges it).
    pub in_flight: VecDeque<(Bytes, Option<Bytes>)>,
    /// Leader ticks since the transfer last made progress.
    pub stalled_ticks: u32,
    /// Stalls in a row without progress in between.
    pub stalls: u32,
    /// Whether the follower answered since the last stall.
    pub answered: bool,
}

impl OutgoingSnapshot {
    /// Returns the position the follower is known to need next: the start
    /// of the oldest chunk in flight, or the next to read.
    pub fn acked_position(&self) -> Bytes {
        match self.in_flight.front() {
            Some((start, _)) => start.clone(),
            None => self
                .reading
                .clone()
                .unwrap_or_else(|| self.next_read.clone()),
        }
    }

    /// Forgets the chunks in flight and goes on reading from `position`.
    pub fn resume_at(&mut self, position: Bytes) {
        self.in_flight.clear();
        self.reading = None;
        self.read_all = false;
        self.next_read = position;
        self.stalled_ticks = 0;
    }
}

/// The replication state of a follower.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressState {
    /// One append at a time, to find the match point.
    Probe,
    /// Pipelined appends.
    Replicate,
    /// Snapshot transfer in progress.
    Snapshot,
}

/// The leader's record of one follower.
#[derive(Clone, Debug)]
pub struct Progress {
    /// The highest index known to match the leader's log.
    pub matched: LogIndex,
    /// The next index to send. Invariant: `matched < next`.
    pub next: LogIndex,
    /// The replication state.
    pub state: ProgressState,
    /// In `Probe`: an append was sent and not yet answered.
    pub probe_sent: bool,
    /// In `Replicate`: appends in flight.
    pub inflights: Inflights,
    /// In `Snapshot`: the index of the snapshot being sent.
    pub pending_snapshot: LogIndex,
    /// In `Snapshot`: the transfer's state.
    pub outgoing: Option<OutgoingSnapshot>,
    /// Heard from within the current CheckQuorum period.
    pub recent_active: bool,
    /// The commit index last sent to the follower.
    pub commit_sent: LogIndex,
    /// A transfer was started for the follower since the last heartbeat
    /// broadcast: its answers start no other one until the next (the
    /// answers of a restoring follower to an abandoned transfer's chunks
    /// would each start one, and each of those sends more chunks).
    pub snapshot_started: bool,
}

impl Progress {
    /// Returns the progress of a follower whose log is unknown.
    pub fn new(next: LogIndex, inflights: Inflights) -> Progress {
        Progress {
            matched: LogIndex(0),
            next,
            state: ProgressState::Probe,
            probe_sent: false,
            inflights,
            pending_snapshot: LogIndex(0),
            outgoing: None,
            recent_active: false,
            commit_sent: LogIndex(0),
            snapshot_started: false,
        }
    }

    /// Enters `Probe`, resuming after the snapshot if one was being sent.
    pub fn become_probe(&mut self) {
        if self.state == ProgressState::Snapshot {
            self.next = self.matched.max(self.pending_snapshot).next();
        } else {
            self.next = self.matched.next();
        }
        self.state = ProgressState::Probe;
        self.outgoing = None;
        self.probe_sent = false;
        self.inflights.reset();
    }

    /// Enters `Replicate` from the match point.
    pub fn become_replicate(&mut self) {
        self.state = ProgressState::Replicate;
        self.outgoing = None;
        self.next = self.matched.next();
        self.probe_sent = false;
        self.inflights.reset();
    }

    /// Enters `Snapshot` for a new transfer (the snapshot's index is known
    /// once its first chunk is read).
    pub fn become_snapshot(&mut self) {
        self.state = ProgressState::Snapshot;
        self.snapshot_started = true;
        self.pending_snapshot = LogIndex(0);
        self.outgoing = Some(OutgoingSnapshot {
            reading: Some(Bytes::new()),
            ..OutgoingSnapshot::default()
        });
        self.inflights.reset();
    }

    /// Records that the follower matches up to `index`; returns whether
    /// that is news.
    pub fn maybe_update(&mut self, index: LogIndex) -> bool {
        let updated = self.matched < index;
        if updated {
            self.matched = index;
            self.probe_sent = false;
        }
        self.next = self.next.max(index.next());
        updated
    }

    /// Moves `next` back after the follower rejected `rejected`; the hint
    /// says the logs may match up to `match_hint`. Returns false for a stale
    /// rejection.
    pub fn maybe_decrease_to(&mut self, rejected: LogIndex, match_hint: LogIndex) -> bool {
        if self.state == ProgressState::Replicate {
            if rejected <= self.matched {
                return false;
            }
            self.next = self.matched.next();
            return true;
        }
        if self.next.prev() != rejected {
            return false;
        }
        self.next = rejected.min(match_hint.next()).max(self.matched.next());
        self.probe_sent = false;
        true
    }

    /// Returns whether the leader must not send appends now.
    pub fn is_paused(&self) -> bool {
        match self.state {
            ProgressState::Probe => self.probe_sent,
            ProgressState::Replicate => self.inflights.full(),
            ProgressState::Snapshot => true,
        }
    }

    /// Records an append sent with entries up to `last` (none if `None`)
    /// of `bytes` in all.
    pub fn sent_append(&mut self, last: Option<LogIndex>, bytes: u64) {
        match (self.state, last) {
            (ProgressState::Replicate, Some(last)) => {
                self.next = last.next();
                self.inflights.add(last, bytes);
            }
            (ProgressState::Probe, _) => self.probe_sent = true,
            _ => {}
        }
    }
}
