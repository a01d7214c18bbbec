//! [`WalBound`]: the size RocksDB holds a store's write-ahead log to, set
//! for the writes the store takes now. The Raft storage paces the log's
//! flushes by it; the application raises it while it writes bulk data
//! (shard moves) and lowers it again after.
//!
//! Invariant: [`WalBound::bytes`] is the bound RocksDB runs with: it moves
//! only after RocksDB took the change, and a refused change leaves both as
//! they were. The bound changes when RocksDB flushes, never what it holds.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rocksdb::DB;

use crate::core::StorageError;
use crate::storage::rocks::WAL_BYTES_MAX;

/// The WAL bound while bulk data is written (64 MiB). A 1 GiB shard move
/// ran 15 % faster with it raised while the shard was pulled (median 105
/// MiB/s against 91, alternating runs): the flushes the bound forces
/// rewrite the log's live tail four times less often. Small writes keep
/// [`WAL_BYTES_MAX`], which suits them better (docs/shardkv.md "Benches
/// of the whole store").
pub const WAL_BYTES_BULK: u64 = 64 << 20;

/// A handle on one database's WAL bound; clones share it.
#[derive(Clone)]
pub struct WalBound {
    db: Arc<DB>,
    bytes: Arc<AtomicU64>,
}

impl std::fmt::Debug for WalBound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WalBound")
            .field("bytes", &self.bytes())
            .finish_non_exhaustive()
    }
}

impl WalBound {
    /// Returns the handle of `db`, opened with the bound [`WAL_BYTES_MAX`].
    pub(crate) fn new(db: Arc<DB>) -> WalBound {
        WalBound {
            db,
            bytes: Arc::new(AtomicU64::new(WAL_BYTES_MAX)),
        }
    }

    /// Returns the bound RocksDB holds the WAL to now.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Sets the bound for bulk writes ([`WAL_BYTES_BULK`]) or for small
    /// ones ([`WAL_BYTES_MAX`]); nothing to do if it is set already.
    ///
    /// # Errors
    /// [`StorageError::Io`] if RocksDB refuses the change; the bound stays.
    pub fn set_bulk(&self, bulk: bool) -> Result<(), StorageError> {
        let bytes = if bulk { WAL_BYTES_BULK } else { WAL_BYTES_MAX };
        if self.bytes() == bytes {
            return Ok(());
        }
        rocks_db_options::set_db_options(&self.db, &[("max_total_wal_size", &bytes.to_string())])
            .map_err(|error| {
            StorageError::Io(format!("setting max_total_wal_size={bytes}: {error}"))
        })?;
        self.bytes.store(bytes, Ordering::Relaxed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{RocksStorage, applied_db_option};

    fn bound_in_options(dir: &std::path::Path) -> String {
        applied_db_option(dir, "max_total_wal_size")
            .expect("read OPTIONS")
            .expect("max_total_wal_size")
    }

    // Goal: the bound a handle reports is the one RocksDB runs with, from
    // open through a raise and back; every clone sees the change.
    #[test]
    fn the_bound_reported_is_the_one_rocksdb_runs_with() {
        let dir = tempfile::tempdir().expect("temp dir");
        let storage = RocksStorage::open(dir.path()).expect("open");
        let bound = storage.wal_bound();
        assert_eq!(bound.bytes(), WAL_BYTES_MAX);
        assert_eq!(bound_in_options(dir.path()), WAL_BYTES_MAX.to_string());
        bound.set_bulk(true).expect("raise");
        assert_eq!(storage.wal_bound().bytes(), WAL_BYTES_BULK);
        assert_eq!(bound_in_options(dir.path()), WAL_BYTES_BULK.to_string());
        bound.set_bulk(false).expect("lower");
        assert_eq!(storage.wal_bound().bytes(), WAL_BYTES_MAX);
        assert_eq!(bound_in_options(dir.path()), WAL_BYTES_MAX.to_string());
    }
}
