//! The application's handle on a running node: requests travel to the
//! node's task over a bounded channel and come back on a oneshot, under a
//! deadline, so no call hangs forever and a flood of callers gets
//! `Overloaded` instead of growing memory without bound: the channel is
//! bounded in requests, and the proposals waiting in it in bytes (a
//! proposal holds its share of the byte budget until the node's task takes
//! it off the channel).

use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot, watch};

use crate::byte_budget::ByteBudget;
use crate::core::{ConfChange, LogIndex, NodeId, Role, Status, Term};
use crate::driver::error::ProposeError;

/// The answer to a proposal: where it applied and what applying it said.
pub type ProposalReply<O> = Result<(LogIndex, O), ProposeError>;

/// A request to the node's task.
pub enum Request<O> {
    /// Replicate `data`; answered once applied.
    Propose {
        /// The payload.
        data: Bytes,
        /// The payload's share of the queue's byte budget, released when
        /// the node's task takes the request.
        queued_bytes: OwnedSemaphorePermit,
        /// Where the answer goes.
        reply: oneshot::Sender<ProposalReply<O>>,
    },
    /// Change the membership; answered once applied.
    ConfChange {
        /// The change.
        change: ConfChange,
        /// Where the answer goes.
        reply: oneshot::Sender<ProposalReply<O>>,
    },
    /// Linearizable read barrier; answered once the application applied
    /// at least the confirmed read index.
    ReadIndex {
        /// Where the answer goes.
        reply: oneshot::Sender<Result<LogIndex, ProposeError>>,
    },
    /// Hand leadership to `target`.
    TransferLeader {
        /// The new leader.
        target: NodeId,
        /// Where the answer goes (accepted, not completed).
        reply: oneshot::Sender<Result<(), ProposeError>>,
    },
}

/// Who leads, as one node sees it: the part of its [`Status`] that
/// changes only with an election, so a task can wait on it without being
/// woken by every commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Leadership {
    /// The node's term.
    pub term: Term,
    /// Its role in that term.
    pub role: Role,
    /// The leader it knows of.
    pub leader: Option<NodeId>,
}

impl Leadership {
    /// Returns the leadership `status` describes.
    pub fn of(status: &Status) -> Leadership {
        Leadership {
            term: status.term,
            role: status.role,
            leader: status.leader,
        }
    }
}

/// A cloneable handle on a running node.
pub struct RaftHandle<O> {
    requests: mpsc::Sender<Request<O>>,
    /// The byte budget of the proposals waiting in `requests`.
    queue_bytes: ByteBudget,
    status: watch::Receiver<Status>,
    leadership: watch::Receiver<Leadership>,
    timeout: Duration,
}

impl<O> Clone for RaftHandle<O> {
    fn clone(&self) -> Self {
        RaftHandle {
            requests: self.requests.clone(),
            queue_bytes: self.queue_bytes.clone(),
            status: self.status.clone(),
            leadership: self.leadership.clone(),
            timeout: self.timeout,
        }
    }
}

impl<O: Send + 'static> RaftHandle<O> {
    /// Returns a handle over the task's request channel, status and
    /// leadership, whose proposals waiting in the channel hold at most
    /// `queue_bytes_max` bytes (a single larger one passes when nothing
    /// else waits).
    pub fn new(
        requests: mpsc::Sender<Request<O>>,
        queue_bytes_max: u64,
        status: watch::Receiver<Status>,
        leadership: watch::Receiver<Leadership>,
        timeout: Duration,
    ) -> Self {
        RaftHandle {
            requests,
            queue_bytes: ByteBudget::new(queue_bytes_max),
            status,
            leadership,
            timeout,
        }
    }

    /// Returns the same handle with another request deadline.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Replicates `data`; returns its index and the application's answer.
    pub async fn propose(&self, data: Bytes) -> ProposalReply<O> {
        let queued_bytes = self
            .queue_bytes
            .try_take(data.len() as u64)
            .ok_or_else(|| ProposeError::Overloaded {
                in_flight: self.requests.max_capacity() - self.requests.capacity(),
                bytes_in_flight: self.queue_bytes.in_use(),
            })?;
        let (reply, answer) = oneshot::channel();
        self.call(
            Request::Propose {
                data,
                queued_bytes,
                reply,
            },
            answer,
        )
        .await?
    }

    /// Changes the membership; returns once the change applied.
    pub async fn propose_conf_change(&self, change: ConfChange) -> ProposalReply<O> {
        let (reply, answer) = oneshot::channel();
        self.call(Request::ConfChange { change, reply }, answer)
            .await?
    }

    /// Waits until a read at this moment is linearizable: leadership was
    /// confirmed by a quorum and the application applied up to the commit
    /// index seen then. Returns that index.
    pub async fn read_barrier(&self) -> Result<LogIndex, ProposeError> {
        let (reply, answer) = oneshot::channel();
        self.call(Request::ReadIndex { reply }, answer).await?
    }

    /// Starts handing leadership to `target`.
    pub async fn transfer_leader(&self, target: NodeId) -> Result<(), ProposeError> {
        let (reply, answer) = oneshot::channel();
        self.call(Request::TransferLeader { target, reply }, answer)
            .await?
    }

    /// Returns the node's latest status.
    pub fn status(&self) -> Status {
        self.status.borrow().clone()
    }

    /// Returns a receiver of status changes (for waiting on conditions).
    pub fn watch_status(&self) -> watch::Receiver<Status> {
        self.status.clone()
    }

    /// Returns a receiver of leadership changes: it is woken only when the
    /// term, the role or the known leader changes, never by a commit.
    pub fn watch_leadership(&self) -> watch::Receiver<Leadership> {
        self.leadership.clone()
    }

    async fn call<T>(
        &self,
        request: Request<O>,
        answer: oneshot::Receiver<T>,
    ) -> Result<T, ProposeError> {
        self.requests
            .try_send(request)
            .map_err(|error| match error {
                mpsc::error::TrySendError::Full(_) => ProposeError::Overloaded {
                    in_flight: self.requests.max_capacity(),
                    bytes_in_flight: self.queue_bytes.in_use(),
                },
                mpsc::error::TrySendError::Closed(_) => ProposeError::Stopped,
            })?;
        match tokio::time::timeout(self.timeout, answer).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(_)) => Err(ProposeError::Stopped),
            Err(_) => Err(ProposeError::Timeout {
                millis: self.timeout.as_millis() as u64,
            }),
        }
    }
}
