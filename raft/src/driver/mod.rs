//! The driver: runs one Raft node as a tokio task (DESIGN.md "Raft",
//! "Driver"). The application implements [`StateMachine`] and talks to the
//! node through a [`RaftHandle`]; peers' messages arrive on a bounded
//! channel fed by the transport.

mod error;
mod handle;
mod join;
mod log_keep;
mod metrics;
mod snapshot_reads;
mod state_machine;
mod task;

pub use error::ProposeError;
pub use handle::{Leadership, ProposalReply, RaftHandle, Request};
pub use join::{NodeJoinHandle, NodeOutcome, NodePanicked};
pub use state_machine::{EncodedSnapshot, SnapshotPiece, SnapshotSource, StateMachine};
pub use task::{NodeOptions, spawn_node};
