//! Leadership transfer (dissertation §3.10): the leader brings the target
//! up to date, then tells it to campaign at once with TimeoutNow. Proposals
//! are refused meanwhile; the transfer is abandoned after an election
//! timeout.

use tracing::info;

use crate::core::Error;
use crate::core::message::MessageBody;
use crate::core::raft::{Raft, Role};
use crate::core::storage::Storage;
use crate::core::types::NodeId;

impl<S: Storage> Raft<S> {
    /// Starts handing leadership to `target`.
    pub fn transfer_leader(&mut self, target: NodeId) -> Result<(), Error> {
        if self.role != Role::Leader {
            return Err(Error::NotLeader {
                leader_hint: self.leader,
            });
        }
        if target == self.id || !self.membership.voters.contains(&target) {
            return Err(Error::InvalidConfChange(format!(
                "cannot transfer leadership to {target}: not another voter"
            )));
        }
        if self.lead_transferee == Some(target) {
            return Ok(());
        }
        info!(
            node = self.id.0,
            term = self.term.0,
            target = target.0,
            "transferring leadership"
        );
        self.lead_transferee = Some(target);
        self.election_elapsed = 0;
        if self.progress[&target].matched == self.log.last_index() {
            self.send(target, MessageBody::TimeoutNow);
        } else {
            self.maybe_send_append(target, true);
        }
        Ok(())
    }

    /// Gives up a transfer that did not complete within an election timeout.
    pub fn abort_leader_transfer(&mut self) {
        if let Some(target) = self.lead_transferee.take() {
            info!(
                node = self.id.0,
                target = target.0,
                "leadership transfer abandoned"
            );
        }
    }
}
