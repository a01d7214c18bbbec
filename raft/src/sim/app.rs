//! The simulated application's database: its [`KvState`] lives in the
//! same database as the Raft log (one write-ahead log), so it survives a
//! process crash, and a power failure loses exactly the application writes
//! made after the node's last synced write (a synced persist, a
//! compaction, a saved membership), as
//! [`MemStorage::lose_unsynced`](crate::storage::MemStorage::lose_unsynced)
//! does for the log.
//!
//! Invariants:
//! - `durable` is `live` as of the last [`AppStore::sync`]: replaying
//!   `unsynced`, in order, on `durable` gives `live`.
//! - Writes are never reordered: a power failure loses a suffix of them.

use crate::sim::kv::{KvState, KvWrite};

/// The live and the durable state of one node's application.
#[derive(Clone, Debug, Default)]
pub struct AppStore {
    /// The state the node serves and applies to.
    live: KvState,
    /// The state a power failure leaves.
    durable: KvState,
    /// The writes made since the last sync, oldest first.
    unsynced: Vec<KvWrite>,
}

impl AppStore {
    /// Returns the live state.
    pub fn state(&self) -> &KvState {
        &self.live
    }

    /// Returns the state as of the last synced write.
    pub fn durable_state(&self) -> &KvState {
        &self.durable
    }

    /// Makes `write` on the live state; returns why it cannot be made
    /// (nothing is written then).
    pub fn write(&mut self, write: KvWrite) -> Result<(), String> {
        self.live.write(&write)?;
        self.unsynced.push(write);
        Ok(())
    }

    /// Makes every write so far durable (the node made a synced write).
    pub fn sync(&mut self) {
        for write in self.unsynced.drain(..) {
            self.durable
                .write(&write)
                .expect("a write the live state accepted replays on the durable state");
        }
        assert_eq!(
            (self.durable.applied, &self.durable.restoring),
            (self.live.applied, &self.live.restoring),
            "the durable state caught up with the live one"
        );
    }

    /// Loses the writes after the last sync (a power failure).
    pub fn lose_unsynced(&mut self) {
        self.unsynced.clear();
        self.live = self.durable.clone();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::LogIndex;
    use crate::sim::kv::KvCommand;

    fn apply(index: u64, value: &str) -> KvWrite {
        let command = KvCommand::Put {
            key: "k".into(),
            value: value.into(),
        };
        KvWrite::Apply {
            index: LogIndex(index),
            data: command.encode(index),
        }
    }

    // Goal: a power failure loses exactly the writes after the last sync,
    // and a refused write changes nothing.
    // Method: apply 2 and 3, sync, apply 4; losing the unsynced writes
    // leaves the state at 3; the live state then continues from there.
    #[test]
    fn a_power_failure_loses_the_writes_after_the_last_sync() {
        let mut app = AppStore::default();
        app.write(apply(1, "a")).expect("first");
        app.write(apply(2, "b")).expect("second");
        app.sync();
        app.write(apply(3, "c")).expect("third");
        assert!(app.write(apply(5, "e")).is_err());
        assert_eq!(app.state().get("k"), "c");
        assert_eq!(app.durable_state().applied, LogIndex(2));
        app.lose_unsynced();
        assert_eq!(
            (app.state().applied, app.state().get("k")),
            (LogIndex(2), "b".into())
        );
        app.write(apply(3, "d")).expect("after the failure");
        app.sync();
        assert_eq!(app.durable_state(), app.state());
        assert_eq!(app.durable_state().get("k"), "d");
    }
}
