//! The one mapping of a driver error ([`ProposeError`]) to what a client
//! of any replica's public API receives (DESIGN.md "Public API", STYLE.md
//! D): a routing outcome travels in the reply's `status` with a leader
//! hint; an overloaded or stopped node is a gRPC error.
//!
//! | driver error | client receives |
//! |---|---|
//! | `NotLeader` | `WRONG_LEADER`, hint: the leader's `host:port` if known |
//! | `Timeout`, `OutcomeUnknown` | `TIMEOUT` (a write may or may not apply: retry with the same seq) |
//! | `Overloaded` | gRPC `RESOURCE_EXHAUSTED` |
//! | `Stopped`, `Refused` | gRPC `UNAVAILABLE` |

use std::collections::BTreeMap;

use proto::kv::v1::Status as ReplyStatus;
use tonic::Status;

use crate::core::NodeId;
use crate::driver::ProposeError;

/// A routing outcome: the reply's `status` and `leader_hint`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Routing {
    /// The reply status (never `OK`).
    pub status: ReplyStatus,
    /// The leader's `host:port`, or empty when unknown or not a redirect.
    pub leader_hint: String,
}

/// Returns the routing outcome of a request the node refused with `error`,
/// or the gRPC error when no reply status fits; `peers` maps replica ids
/// to their `host:port`, for the leader hint.
///
/// # Errors
/// `RESOURCE_EXHAUSTED` for an overloaded node, `UNAVAILABLE` for a
/// stopped one or a request the core refused.
pub fn routing(error: ProposeError, peers: &BTreeMap<NodeId, String>) -> Result<Routing, Status> {
    match error {
        ProposeError::NotLeader { leader_hint } => Ok(Routing {
            status: ReplyStatus::WrongLeader,
            leader_hint: leader_hint
                .and_then(|leader| peers.get(&leader).cloned())
                .unwrap_or_default(),
        }),
        ProposeError::Timeout { .. } | ProposeError::OutcomeUnknown { .. } => Ok(Routing {
            status: ReplyStatus::Timeout,
            leader_hint: String::new(),
        }),
        overloaded @ ProposeError::Overloaded { .. } => {
            Err(Status::resource_exhausted(overloaded.to_string()))
        }
        stopped @ (ProposeError::Stopped | ProposeError::Refused(_)) => {
            Err(Status::unavailable(stopped.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use tonic::Code;

    use super::*;
    use crate::core::LogIndex;

    // Every driver error has its place in the table of the module doc.
    #[test]
    fn each_driver_error_maps_to_its_status() {
        let peers = BTreeMap::from([(NodeId(2), String::from("10.0.0.2:7001"))]);
        let routed = |error| routing(error, &peers).expect("a routing outcome");
        let hinted = routed(ProposeError::NotLeader {
            leader_hint: Some(NodeId(2)),
        });
        assert_eq!(hinted.status, ReplyStatus::WrongLeader);
        assert_eq!(hinted.leader_hint, "10.0.0.2:7001");
        let unknown = routed(ProposeError::NotLeader { leader_hint: None });
        assert_eq!(unknown.leader_hint, "");
        for timeout in [
            ProposeError::Timeout { millis: 5 },
            ProposeError::OutcomeUnknown { index: LogIndex(3) },
        ] {
            assert_eq!(routed(timeout).status, ReplyStatus::Timeout);
        }
        let code = |error| routing(error, &peers).expect_err("a gRPC error").code();
        let overloaded = ProposeError::Overloaded {
            in_flight: 1,
            bytes_in_flight: 2,
        };
        assert_eq!(code(overloaded), Code::ResourceExhausted);
        assert_eq!(code(ProposeError::Stopped), Code::Unavailable);
        assert_eq!(code(ProposeError::Refused("no".into())), Code::Unavailable);
    }
}
