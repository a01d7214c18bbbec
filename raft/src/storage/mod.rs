//! Durable storage of the Raft log and hard state: the implementations of
//! the core's [`Storage`] contract (`crate::core::storage`, re-exported
//! here). The core reads through the trait and the node's owner writes each
//! `Ready` through [`Storage::persist`], one synced batch per `Ready` (group
//! commit). [`MemStorage`] keeps everything in memory for tests and the
//! simulator; `RocksStorage` (feature `node`) keeps it in the process's
//! RocksDB, every record framed with a crc32 by `codec`.

#[cfg_attr(not(feature = "node"), allow(dead_code))]
mod codec;
#[cfg(feature = "node")]
mod direct_io;
#[cfg(feature = "node")]
mod entry_cache;
mod mem;
#[cfg(feature = "node")]
mod rocks;
#[cfg(feature = "node")]
mod term_runs;
#[cfg(feature = "node")]
mod wal_bound;

#[cfg(feature = "node")]
pub use direct_io::takes_direct_writes;
pub use mem::MemStorage;
#[cfg(feature = "node")]
pub use rocks::{
    CF_DATA, CF_META, CF_RAFT_LOG, CF_RAFT_STATE, MEMTABLES_BYTES_MAX, RocksStorage, WAL_BYTES_MAX,
    WAL_FILES_RECYCLED, applied_db_option, applied_family_option, applied_options, defer_blob_gc,
};
#[cfg(feature = "node")]
pub use wal_bound::{WAL_BYTES_BULK, WalBound};

pub use crate::core::storage::{InitialState, PersistBatch, Storage};
