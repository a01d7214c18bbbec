//! The exit codes every server binary (`shardctrler`, `raft-node`, later
//! `shardkv`) shares, so supervisors and operators read them alike:
//!
//! | code | meaning |
//! |---|---|
//! | 0 | stopped cleanly (signal, or the node ended) |
//! | 2 | bad flags, or an address that cannot be bound |
//! | 3 | a storage failure (I/O, a corrupt log record): an operator must act |
//! | 4 | the installed snapshot cannot be restored (a chunk corrupt or missing, the data cut short): the replica refuses to start on it; an operator must act (wipe the data dir so the replica catches up from its group, or restore a backup) |

use crate::core::{Error, StorageError};

/// Bad flags, or an address that cannot be bound.
pub const CONFIG: u8 = 2;
/// A storage failure: an operator must act.
pub const STORAGE: u8 = 3;
/// The installed snapshot cannot be restored: the replica will not serve.
pub const SNAPSHOT_RESTORE: u8 = 4;

/// Returns the exit code for a node that stopped on `error`.
pub fn for_storage_error(error: &StorageError) -> u8 {
    match error {
        StorageError::SnapshotRestore { .. } => SNAPSHOT_RESTORE,
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

    #[test]
    fn a_failed_restore_has_its_own_code() {
        let restore = StorageError::SnapshotRestore {
            index: LogIndex(7),
            term: Term(2),
            position: 0,
            detail: "corrupt".into(),
        };
        assert_eq!(for_storage_error(&restore), SNAPSHOT_RESTORE);
        assert_eq!(for_start_error(&Error::Storage(restore)), SNAPSHOT_RESTORE);
        assert_eq!(for_storage_error(&StorageError::Io("disk".into())), STORAGE);
        assert_ne!(SNAPSHOT_RESTORE, STORAGE);
        assert_ne!(SNAPSHOT_RESTORE, CONFIG);
    }
}
