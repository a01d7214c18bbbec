//! The node's inbound queue: peer messages wait here between the gRPC
//! service that received them and the node's loop, bounded both in count
//! and in bytes, so a flood of large appends (1 MiB values) cannot grow a
//! replica's memory without bound.
//!
//! Invariants:
//! - At most `messages_max` messages and `bytes_max` bytes of them (their
//!   approximate wire size) are queued at once (a `ByteBudget`); a message
//!   that does not fit is refused at once, never waited for. A single
//!   message larger than `bytes_max` is let in when the queue holds nothing
//!   else.
//! - A message's bytes are released when the node takes it off the queue.

use tokio::sync::mpsc::error::{TryRecvError, TrySendError};
use tokio::sync::{OwnedSemaphorePermit, mpsc};

use crate::byte_budget::ByteBudget;
use crate::core::Message;
use crate::transport::error::Refused;
use crate::transport::queue::wire_size_bytes;

/// Messages the inbound queue holds by default.
pub const INBOUND_MESSAGES_MAX: usize = 16 * 1024;
/// Bytes of messages the inbound queue holds by default (64 MiB).
pub const INBOUND_BYTES_MAX: u64 = 64 << 20;

/// A queued message and the share of the byte budget it holds.
struct Queued {
    message: Message,
    _bytes: OwnedSemaphorePermit,
}

/// Returns the two ends of an inbound queue holding at most
/// `messages_max` messages and `bytes_max` bytes of them.
///
/// # Panics
/// Panics if either bound is 0.
pub fn inbound_queue(messages_max: usize, bytes_max: u64) -> (InboundSender, InboundReceiver) {
    assert!(
        messages_max > 0 && bytes_max > 0,
        "inbound bounds must be positive"
    );
    let (sender, receiver) = mpsc::channel(messages_max);
    (
        InboundSender {
            sender,
            bytes: ByteBudget::new(bytes_max),
        },
        InboundReceiver { receiver },
    )
}

/// The receiving service's end of the inbound queue.
#[derive(Clone, Debug)]
pub struct InboundSender {
    sender: mpsc::Sender<Queued>,
    bytes: ByteBudget,
}

impl InboundSender {
    /// Queues `message` if it fits both bounds, or says why not (the
    /// message is then dropped).
    ///
    /// # Errors
    /// [`Refused::Full`] if either bound is reached, [`Refused::Closed`] if
    /// the node stopped.
    pub fn try_send(&self, message: Message) -> Result<(), Refused> {
        if self.sender.is_closed() {
            return Err(Refused::Closed);
        }
        let bytes = self
            .bytes
            .try_take(wire_size_bytes(&message))
            .ok_or(Refused::Full)?;
        self.sender
            .try_send(Queued {
                message,
                _bytes: bytes,
            })
            .map_err(|error| match error {
                TrySendError::Full(_) => Refused::Full,
                TrySendError::Closed(_) => Refused::Closed,
            })
    }
}

/// The node's end of the inbound queue.
#[derive(Debug)]
pub struct InboundReceiver {
    receiver: mpsc::Receiver<Queued>,
}

impl InboundReceiver {
    /// Waits for the next message; `None` once every sender is gone.
    pub async fn recv(&mut self) -> Option<Message> {
        self.receiver.recv().await.map(|queued| queued.message)
    }

    /// Returns the next message if one is queued.
    ///
    /// # Errors
    /// `Empty` if none is queued, `Disconnected` once every sender is gone.
    pub fn try_recv(&mut self) -> Result<Message, TryRecvError> {
        self.receiver.try_recv().map(|queued| queued.message)
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::core::{Entry, EntryKind, LogIndex, MessageBody, NodeId, Term};

    fn append(bytes: usize) -> Message {
        Message {
            from: NodeId(1),
            to: NodeId(2),
            term: Term(1),
            body: MessageBody::AppendEntries {
                prev_index: LogIndex(0),
                prev_term: Term(0),
                entries: vec![Entry {
                    term: Term(1),
                    index: LogIndex(1),
                    kind: EntryKind::Normal,
                    data: Bytes::from(vec![0; bytes]),
                }],
                commit: LogIndex(0),
            },
        }
    }

    #[tokio::test]
    async fn the_byte_budget_refuses_what_does_not_fit_and_frees_on_receive() {
        let (sender, mut receiver) = inbound_queue(100, 3 << 20);
        sender.try_send(append(1 << 20)).expect("first MiB fits");
        sender.try_send(append(1 << 20)).expect("second MiB fits");
        assert!(matches!(
            sender.try_send(append(1 << 20)),
            Err(Refused::Full)
        ));
        receiver.recv().await.expect("a message");
        sender
            .try_send(append(1 << 20))
            .expect("room again after a receive");
    }

    #[tokio::test]
    async fn a_message_over_the_budget_passes_alone() {
        let (sender, mut receiver) = inbound_queue(100, 1 << 20);
        sender.try_send(append(4 << 20)).expect("alone, it passes");
        assert!(matches!(sender.try_send(append(10)), Err(Refused::Full)));
        receiver.try_recv().expect("the big one");
        sender.try_send(append(10)).expect("room again");
    }

    #[tokio::test]
    async fn the_count_bound_holds_too() {
        let (sender, _receiver) = inbound_queue(2, 64 << 20);
        sender.try_send(append(1)).expect("one");
        sender.try_send(append(1)).expect("two");
        assert!(matches!(sender.try_send(append(1)), Err(Refused::Full)));
    }
}
