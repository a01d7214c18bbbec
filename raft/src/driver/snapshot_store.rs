//! What the driver needs from storage beyond the core's [`Storage`]:
//! turning the application's state into the latest snapshot (compacting
//! the log) and reading an installed snapshot back, chunk by chunk.

use bytes::Bytes;

use crate::core::{LogIndex, Membership, StorageError};
use crate::storage::{MemStorage, RocksStorage, SnapshotWriter, Storage, WrittenSnapshot};

/// Storage that can hold application snapshots.
///
/// # Correctness
/// `compact_to_snapshot` may drop log entries up to `index` only once the
/// application state at `index` is durable; the chunks must be that state.
pub trait SnapshotStore: Storage + Send + 'static {
    /// Records the application's state at `index` as the latest snapshot
    /// and drops the log entries it covers.
    fn compact_to_snapshot(
        &mut self,
        index: LogIndex,
        membership: Membership,
        chunks: &mut dyn Iterator<Item = Bytes>,
    ) -> Result<(), StorageError>;

    /// Returns the chunks of the latest snapshot, in order.
    fn snapshot_chunks(&self) -> Box<dyn Iterator<Item = Result<Bytes, StorageError>> + '_>;

    /// Returns the size of the latest snapshot's data, in bytes.
    fn snapshot_size_bytes(&self) -> u64;

    /// Returns a writer of a new snapshot's data that works from another
    /// thread, or `None` if this storage cannot take one (the driver then
    /// snapshots on the node's thread with `compact_to_snapshot`).
    fn snapshot_writer(&mut self) -> Option<SnapshotWriter> {
        None
    }

    /// Makes the snapshot a [`SnapshotStore::snapshot_writer`] wrote (the
    /// application state at `index`) the latest one and
    /// drops the log entries it covers. Returns `false`, deleting its
    /// data, if a later snapshot was installed meanwhile.
    fn install_written(
        &mut self,
        _written: WrittenSnapshot,
        _index: LogIndex,
        _membership: Membership,
    ) -> Result<bool, StorageError> {
        Err(StorageError::Io(
            "this storage writes no snapshot from another thread".into(),
        ))
    }
}

impl SnapshotStore for MemStorage {
    fn compact_to_snapshot(
        &mut self,
        index: LogIndex,
        membership: Membership,
        chunks: &mut dyn Iterator<Item = Bytes>,
    ) -> Result<(), StorageError> {
        let data: Vec<u8> = chunks.flat_map(|chunk| chunk.to_vec()).collect();
        self.create_snapshot(index, membership, Bytes::from(data));
        Ok(())
    }

    fn snapshot_chunks(&self) -> Box<dyn Iterator<Item = Result<Bytes, StorageError>> + '_> {
        Box::new(std::iter::once(Ok(self.snapshot_data())))
    }

    fn snapshot_size_bytes(&self) -> u64 {
        self.snapshot_data().len() as u64
    }
}

impl SnapshotStore for RocksStorage {
    fn compact_to_snapshot(
        &mut self,
        index: LogIndex,
        membership: Membership,
        chunks: &mut dyn Iterator<Item = Bytes>,
    ) -> Result<(), StorageError> {
        self.create_snapshot(index, membership, chunks)
    }

    fn snapshot_chunks(&self) -> Box<dyn Iterator<Item = Result<Bytes, StorageError>> + '_> {
        match self.snapshot_data() {
            Ok(data) => Box::new(data),
            Err(error) => Box::new(std::iter::once(Err(error))),
        }
    }

    fn snapshot_size_bytes(&self) -> u64 {
        self.snapshot_record_size_bytes()
    }

    fn snapshot_writer(&mut self) -> Option<SnapshotWriter> {
        Some(RocksStorage::snapshot_writer(self))
    }

    fn install_written(
        &mut self,
        written: WrittenSnapshot,
        index: LogIndex,
        membership: Membership,
    ) -> Result<bool, StorageError> {
        self.install_written_snapshot(written, index, membership)
    }
}
