//! [`StartError`]: why a replica could not start, and [`Stopped`]: why a
//! running one stopped on its own. Each maps to one exit code
//! ([`crate::exit_code`]), so every server binary exits alike.

use std::net::SocketAddr;

use thiserror::Error;

use crate::core::StorageError;
use crate::exit_code;

/// Why a replica could not start. Each variant is an environment failure
/// a server binary reports with its own exit code.
#[derive(Debug, Error)]
pub enum StartError {
    /// The options disagree with each other (an id not among the peers,
    /// an application setting out of range).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The data dir could not be opened, bootstrapped or read back.
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    /// The Raft node refused to start on the stored state.
    #[error("raft node: {0}")]
    Node(#[from] crate::core::Error),
    /// The gRPC or HTTP address could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address asked for.
        address: SocketAddr,
        /// Why binding failed.
        source: std::io::Error,
    },
}

impl StartError {
    /// Returns the exit code of a server that could not start because of
    /// this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            StartError::Config(_) | StartError::Bind { .. } => exit_code::CONFIG,
            StartError::Storage(error) => exit_code::for_storage_error(error),
            StartError::Node(error) => exit_code::for_start_error(error),
        }
    }
}

/// Why a running replica stopped on its own.
#[derive(Debug)]
pub enum Stopped {
    /// The gRPC server ended while the node ran (a transport error, or a
    /// panic in its task), with its reason: a runtime failure.
    ServerEnded(String),
    /// The node stopped cleanly (every handle dropped).
    NodeEnded,
    /// The node stopped on a storage failure.
    Storage(StorageError),
    /// The node's thread panicked (a corrupt entry or a failed write).
    NodePanicked(String),
}

impl Stopped {
    /// Returns the exit code of a server whose replica stopped so.
    pub fn exit_code(&self) -> u8 {
        match self {
            Stopped::NodeEnded => 0,
            Stopped::ServerEnded(_) => exit_code::SERVER_FAILED,
            Stopped::Storage(error) => exit_code::for_storage_error(error),
            Stopped::NodePanicked(_) => exit_code::STORAGE,
        }
    }

    /// Logs why the replica stopped: at error level unless it ended
    /// cleanly.
    pub fn log(&self) {
        match self {
            Stopped::NodeEnded => tracing::info!("the raft node ended"),
            Stopped::ServerEnded(reason) => tracing::error!(reason, "the gRPC server stopped"),
            Stopped::Storage(error) => {
                tracing::error!(%error, "the raft node stopped on a storage failure");
            }
            Stopped::NodePanicked(reason) => tracing::error!(reason, "the raft node failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{LogIndex, Term};

    // A replica that cannot restore its snapshot exits with its own code,
    // at start and when running; one that ends cleanly exits 0; a gRPC
    // server that fails while running is not a flag error.
    #[test]
    fn each_outcome_has_its_exit_code() {
        let restore = || StorageError::SnapshotRestore {
            index: LogIndex(7),
            term: Term(2),
            position: "the beginning".into(),
            detail: "corrupt".into(),
        };
        assert_eq!(
            StartError::Storage(restore()).exit_code(),
            exit_code::SNAPSHOT_RESTORE
        );
        assert_eq!(
            Stopped::Storage(restore()).exit_code(),
            exit_code::SNAPSHOT_RESTORE
        );
        assert_eq!(Stopped::NodeEnded.exit_code(), 0);
        assert_eq!(
            Stopped::NodePanicked("bug".into()).exit_code(),
            exit_code::STORAGE
        );
        assert_eq!(
            StartError::Config("bad".into()).exit_code(),
            exit_code::CONFIG
        );
        assert_eq!(
            Stopped::ServerEnded("transport".into()).exit_code(),
            exit_code::SERVER_FAILED
        );
    }
}
