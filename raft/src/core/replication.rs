//! Log replication (§5.3): proposals, appends with pipelining and batching,
//! fast backtracking on rejection, heartbeats, and commitment by counting
//! current-term entries (§5.4.2).
//!
//! Invariants:
//! - The leader never overwrites or deletes entries in its own log.
//! - An entry is committed by counting replicas only if it is of the
//!   leader's current term; earlier entries commit indirectly.
//! - A follower's commit index never passes the last entry it has verified
//!   to match the leader.

use bytes::Bytes;
use tracing::debug;

use crate::core::Error;
use crate::core::StorageError;
use crate::core::message::{Message, MessageBody};
use crate::core::progress::ProgressState;
use crate::core::quorum::committed_index;
use crate::core::raft::{Raft, Role};
use crate::core::ready::SnapshotRequest;
use crate::core::storage::Storage;
use crate::core::types::{Entry, EntryKind, LogIndex, NodeId, Term};

impl<S: Storage> Raft<S> {
    /// Appends a proposal to the leader's log; returns its index.
    pub fn propose(&mut self, kind: EntryKind, data: Bytes) -> Result<LogIndex, Error> {
        if self.role != Role::Leader {
            return Err(Error::NotLeader {
                leader_hint: self.leader,
            });
        }
        if self.lead_transferee.is_some() {
            return Err(Error::TransferInProgress);
        }
        let index = self.log.last_index().next();
        let entry = Entry {
            term: self.term,
            index,
            kind,
            data,
        };
        self.log.append(&[entry]);
        Ok(index)
    }

    /// Sends every follower what it lacks, one message each where possible
    /// (batching): called once per Ready so all proposals made meanwhile
    /// travel together.
    pub fn flush_appends(&mut self) {
        if self.role != Role::Leader {
            return;
        }
        let followers: Vec<NodeId> = self
            .progress
            .keys()
            .copied()
            .filter(|&id| id != self.id)
            .collect();
        for follower in followers {
            while self.maybe_send_append(follower, false) {}
        }
    }

    /// Sends one append to `to` if it is not paused and lacks entries (or,
    /// with `send_if_empty`, a commit update). Returns whether more could
    /// follow at once (pipelining).
    pub fn maybe_send_append(&mut self, to: NodeId, send_if_empty: bool) -> bool {
        let committed = self.log.committed;
        let last_index = self.log.last_index();
        let Some(progress) = self.progress.get(&to) else {
            return false;
        };
        if progress.is_paused() {
            return false;
        }
        let has_entries = progress.next <= last_index;
        if !has_entries && !send_if_empty && progress.commit_sent >= committed.min(progress.matched)
        {
            return false;
        }
        let prev_index = progress.next.prev();
        let (prev_term, entries) = match self.append_payload(prev_index, has_entries) {
            Ok(payload) => payload,
            Err(StorageError::Compacted) => {
                self.send_snapshot(to);
                return false;
            }
            Err(error) => panic!("raft storage failed, stopping the node: {error}"),
        };
        let last = entries.last().map(|entry| entry.index);
        let bytes = entries.iter().map(Entry::size_bytes).sum();
        let progress = self.progress.get_mut(&to).expect("checked above");
        progress.sent_append(last, bytes);
        progress.commit_sent = committed;
        self.send(
            to,
            MessageBody::AppendEntries {
                prev_index,
                prev_term,
                entries,
                commit: committed,
            },
        );
        last.is_some() && self.progress[&to].state == ProgressState::Replicate
    }

    fn append_payload(
        &self,
        prev_index: LogIndex,
        has_entries: bool,
    ) -> Result<(Term, Vec<Entry>), StorageError> {
        let prev_term = self.log.term(prev_index)?;
        let entries = if has_entries {
            self.log
                .entries_from(prev_index.next(), self.config.message_bytes_max)?
        } else {
            Vec::new()
        };
        Ok((prev_term, entries))
    }

    /// Follower: appends the leader's entries if the logs match at
    /// `prev_index`, or rejects with a backtracking hint.
    pub fn on_append_entries(&mut self, message: Message) {
        let MessageBody::AppendEntries {
            prev_index,
            prev_term,
            entries,
            commit,
        } = message.body
        else {
            unreachable!("on_append_entries takes appends only");
        };
        if self.role != Role::Follower {
            self.become_follower(self.term, Some(message.from));
        }
        self.leader = Some(message.from);
        self.election_elapsed = 0;
        if self.restoring.is_some() {
            self.send_restore_point(message.from);
            return;
        }
        if prev_index < self.log.committed {
            // Everything up to our commit index matches the leader already.
            let index = self.log.committed;
            self.send_append_response(message.from, false, index, LogIndex(0), Term(0));
            return;
        }
        match self
            .log
            .maybe_append(prev_index, prev_term, commit, &entries)
        {
            Some(last_new) => {
                self.send_append_response(message.from, false, last_new, LogIndex(0), Term(0))
            }
            None => {
                let probe = prev_index.min(self.log.last_index());
                let (hint_index, hint_term) = self.log.find_conflict_by_term(probe, prev_term);
                debug!(
                    node = self.id.0,
                    prev_index = prev_index.0,
                    hint_index = hint_index.0,
                    "rejecting append"
                );
                self.send_append_response(message.from, true, prev_index, hint_index, hint_term);
            }
        }
    }

    fn send_append_response(
        &mut self,
        to: NodeId,
        rejected: bool,
        index: LogIndex,
        hint_index: LogIndex,
        hint_term: Term,
    ) {
        self.send(
            to,
            MessageBody::AppendResponse {
                rejected,
                index,
                hint_index,
                hint_term,
            },
        );
    }

    /// Leader: advances or backs off a follower's progress.
    pub fn on_append_response(&mut self, message: Message) {
        let MessageBody::AppendResponse {
            rejected,
            index,
            hint_index,
            hint_term,
        } = message.body
        else {
            unreachable!("on_append_response takes append responses only");
        };
        if self.role != Role::Leader {
            return;
        }
        let from = message.from;
        let match_hint = if rejected && hint_term > Term(0) {
            self.log.find_conflict_by_term(hint_index, hint_term).0
        } else {
            hint_index
        };
        let Some(progress) = self.progress.get_mut(&from) else {
            return;
        };
        progress.recent_active = true;
        if rejected {
            if progress.maybe_decrease_to(index, match_hint) {
                if progress.state == ProgressState::Replicate {
                    progress.become_probe();
                }
                self.maybe_send_append(from, true);
            }
            return;
        }
        self.on_append_accepted(from, index);
    }

    fn on_append_accepted(&mut self, from: NodeId, index: LogIndex) {
        let progress = self.progress.get_mut(&from).expect("caller checked");
        if !progress.maybe_update(index) {
            return;
        }
        match progress.state {
            ProgressState::Probe => progress.become_replicate(),
            ProgressState::Snapshot
                if progress.pending_snapshot > LogIndex(0)
                    && progress.matched >= progress.pending_snapshot =>
            {
                progress.become_probe();
                progress.become_replicate();
                self.snapshot_requests
                    .push(SnapshotRequest::Release { to: from });
            }
            ProgressState::Replicate => progress.inflights.free_up_to(index),
            ProgressState::Snapshot => {}
        }
        self.maybe_commit();
        if self.lead_transferee == Some(from)
            && self.progress[&from].matched == self.log.last_index()
        {
            self.send(from, MessageBody::TimeoutNow);
        }
    }

    /// Leader: commits the highest index stored on a quorum, if of the
    /// current term; then releases reads waiting for a current-term commit.
    pub fn maybe_commit(&mut self) -> bool {
        let index = committed_index(&self.membership.voters, &self.progress);
        let committed = self.log.maybe_commit(index, self.term);
        if committed {
            self.release_reads_after_commit();
        }
        committed
    }

    /// Leader: records that its own log is durable up to `index`.
    pub fn on_own_append_persisted(&mut self, index: LogIndex) {
        if self.role != Role::Leader {
            return;
        }
        let own_id = self.id;
        if let Some(progress) = self.progress.get_mut(&own_id) {
            progress.maybe_update(index);
        }
        self.maybe_commit();
    }

    /// Leader: sends a heartbeat to every member, and lets a restoring
    /// follower's answer start a snapshot transfer again.
    pub fn broadcast_heartbeat(&mut self) {
        for progress in self.progress.values_mut() {
            progress.snapshot_started = false;
        }
        let round = self.read_only.take_round();
        self.send_heartbeats(round);
    }

    /// Leader: sends a heartbeat carrying `read_round` to every member.
    pub fn send_heartbeats(&mut self, read_round: u64) {
        let committed = self.log.committed;
        let targets: Vec<(NodeId, LogIndex)> = self
            .progress
            .iter()
            .filter(|&(&id, _)| id != self.id)
            .map(|(&id, progress)| (id, committed.min(progress.matched)))
            .collect();
        for (to, commit) in targets {
            self.send(to, MessageBody::Heartbeat { commit, read_round });
        }
    }

    /// Follower: learns the leader is alive and its safe commit index.
    pub fn on_heartbeat(&mut self, from: NodeId, commit: LogIndex, read_round: u64) {
        if self.role != Role::Follower {
            self.become_follower(self.term, Some(from));
        }
        self.leader = Some(from);
        self.election_elapsed = 0;
        self.log.commit_to(commit.min(self.log.last_index()));
        self.send(from, MessageBody::HeartbeatResponse { read_round });
        self.send_restore_point(from);
    }

    /// Leader: a heartbeat answer proves the follower is alive, confirms
    /// reads, and resumes replication that lost a message.
    pub fn on_heartbeat_response(&mut self, from: NodeId, read_round: u64) {
        if self.role != Role::Leader {
            return;
        }
        let last_index = self.log.last_index();
        let Some(progress) = self.progress.get_mut(&from) else {
            return;
        };
        progress.recent_active = true;
        progress.probe_sent = false;
        let state = progress.state;
        // A full window on a heartbeat response suggests a lost append:
        // free the oldest until one may go (one message may not be enough
        // when the window is full by bytes).
        while state == ProgressState::Replicate && progress.inflights.full() {
            progress.inflights.free_first();
        }
        // A snapshot transfer resumes on its own (`tick_snapshot_transfers`).
        if state != ProgressState::Snapshot && progress.matched < last_index {
            self.maybe_send_append(from, true);
        }
        if read_round > 0 && self.membership.voters.contains(&from) {
            self.confirm_reads(from, read_round);
        }
    }
}
