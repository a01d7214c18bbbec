//! The exit codes every server binary (`shardctrler`, `raft-node`, later
//! `shardkv`) shares, so supervisors and operators read them alike:
//!
//! | code | meaning |
//! |---|---|
//! | 0 | stopped cleanly (signal, or the node ended) |
//! | 2 | bad flags, or an address that cannot be bound |
//! | 3 | a storage failure (I/O, a corrupt log record): an operator must act |
//! | 4 | the application's state cannot be made whole: a snapshot from the leader cannot be restored into it (the replica stays marked as restoring and never serves part of it), or its state is older than the compacted log; an operator must act (wipe the data dir so the replica catches up from its group, or restore a backup) |
//! | 5 | the gRPC server stopped on its own while the node ran (a transport error, or a panic in it): a runtime failure, neither the flags nor the data dir (which is intact): a supervisor may restart the server |

use crate::core::{Error, StorageError};

/// Bad flags, or an address that cannot be bound.
pub const CONFIG: u8 = 2;
/// A storage failure: an operator must act.
pub const STORAGE: u8 = 3;
/// The application's state cannot be made whole: the replica will not
/// serve.
pub const SNAPSHOT_RESTORE: u8 = 4;
/// The gRPC server stopped on its own while the node ran: a runtime
/// failure; the data dir is intact, so the server may be restarted.
pub const SERVER_FAILED: u8 = 5;

/// Returns the exit code for a node that stopped on `error`.
pub fn for_storage_error(error: &StorageError) -> u8 {
    match error {
        StorageError::SnapshotRestore { .. } | StorageError::StateBehindLog { .. } => {
            SNAPSHOT_RESTORE
        }
        _ => STORAGE,
    }
}

/// Returns the exit code for a node that could not start because of
/// `error`.
pub fn for_start_error(error: &Error) -> u8 {
    match error {
        Error::Storage(storage) => for_storage_error(storage),
        Error::InvalidConfig(_) => CONFIG,
        _ => STORAGE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{LogIndex, Term};

    // A failed restore has a code apart from other storage failures, and
    // no two causes share a code.
    #[test]
    fn a_failed_restore_has_its_own_code() {
        let restore = StorageError::SnapshotRestore {
            index: LogIndex(7),
            term: Term(2),
            position: "the beginning".into(),
            detail: "corrupt".into(),
        };
        assert_eq!(for_storage_error(&restore), SNAPSHOT_RESTORE);
        assert_eq!(for_start_error(&Error::Storage(restore)), SNAPSHOT_RESTORE);
        assert_eq!(for_storage_error(&StorageError::Io("disk".into())), STORAGE);
        let codes = [CONFIG, STORAGE, SNAPSHOT_RESTORE, SERVER_FAILED];
        for (position, code) in codes.iter().enumerate() {
            assert!(!codes[..position].contains(code), "code {code} is reused");
        }
    }
}
