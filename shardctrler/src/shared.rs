//! [`SharedState`]: one replica's applied [`ControllerState`], written by the
//! Raft node's task (through `store_rocks.rs`) and read by the gRPC service.
//!
//! Invariants:
//!
//! - Only the node's task changes the state, in log order; the service only
//!   reads it. A read after the driver's read barrier therefore sees every
//!   request committed before the barrier (linearizable Query).
//! - The number published to subscribers never exceeds the latest number in
//!   the state: it is sent after the state changed, so a watcher that wakes
//!   up always finds the configurations it was told about.
//! - Critical sections are short (no I/O, no await under the lock).

use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use tokio::sync::watch;

use crate::command::Request;
use crate::error::AdminError;
use crate::state_machine::{ControllerState, Session};
use crate::types::{Config, ConfigNum};

/// What applying one request changed, for the store to persist.
#[derive(Debug)]
pub(crate) struct Applied {
    /// The reply the proposer gets.
    pub(crate) reply: Result<Config, AdminError>,
    /// The configuration the request created, if it created one.
    pub(crate) created: Option<Config>,
    /// The client's session after the request, if it has one.
    pub(crate) session: Option<Session>,
    /// The clients whose sessions expired before the request.
    pub(crate) expired: Vec<u64>,
}

/// A replica's applied controller state and the number of its latest
/// configuration, which watchers subscribe to.
#[derive(Debug)]
pub struct SharedState {
    state: RwLock<ControllerState>,
    latest: watch::Sender<ConfigNum>,
}

impl SharedState {
    /// Returns a shared holder of `state`.
    pub fn new(state: ControllerState) -> Arc<SharedState> {
        let (latest, _) = watch::channel(state.latest().num);
        Arc::new(SharedState {
            state: RwLock::new(state),
            latest,
        })
    }

    /// Returns what `read` computes from the current state.
    pub fn read<R>(&self, read: impl FnOnce(&ControllerState) -> R) -> R {
        read(&self.read_guard())
    }

    /// Returns the latest configuration.
    pub fn latest(&self) -> Config {
        self.read(|state| state.latest().clone())
    }

    /// Returns up to `count_max` configurations numbered `from` and above,
    /// in order; empty when `from` is past the latest.
    pub fn configs_from(&self, from: u64, count_max: usize) -> Vec<Config> {
        self.read(|state| {
            let start = usize::try_from(from).unwrap_or(usize::MAX);
            state
                .history()
                .iter()
                .skip(start)
                .take(count_max)
                .cloned()
                .collect()
        })
    }

    /// Returns a receiver that changes whenever a new configuration is
    /// applied (or a snapshot restored); its value is the latest number.
    pub fn subscribe(&self) -> watch::Receiver<ConfigNum> {
        self.latest.subscribe()
    }

    /// Applies one committed request and returns what it changed.
    pub(crate) fn apply(&self, request: Request) -> Applied {
        let client_id = request.client_id;
        let applied = {
            let mut state = self.write_guard();
            let before = state.latest().num;
            let logged = state.apply_logged(request);
            let created = (state.latest().num != before).then(|| state.latest().clone());
            let session = state.session(client_id).cloned();
            Applied {
                reply: logged.reply,
                created,
                session,
                expired: logged.expired,
            }
        };
        if let Some(config) = &applied.created {
            self.latest.send_replace(config.num);
        }
        applied
    }

    /// Replaces the whole state (a snapshot was installed).
    pub(crate) fn replace(&self, state: ControllerState) {
        let latest = state.latest().num;
        *self.write_guard() = state;
        self.latest.send_replace(latest);
    }

    fn read_guard(&self) -> RwLockReadGuard<'_, ControllerState> {
        self.state
            .read()
            .expect("no thread panics while holding the controller state lock")
    }

    fn write_guard(&self) -> RwLockWriteGuard<'_, ControllerState> {
        self.state
            .write()
            .expect("no thread panics while holding the controller state lock")
    }
}
