//! At-most-once client sessions, the part every replicated server's state
//! machine shares (DESIGN.md "Clients and semantics"): for each (scope,
//! client id) the client's last executed sequence number, the reply it
//! got, and when the session was last used, by the leader's clock as
//! logged with the request.
//!
//! The controller keeps one scope (`()`); a group server keys its sessions
//! by shard, so a shard's sessions travel with it and are deleted with it.
//!
//! Invariants:
//! - `by_use` indexes exactly the records: `(used_ms, scope, client)` for
//!   each, so expiry visits only the sessions it removes.
//! - A session's `used_ms` never goes back (a leader whose clock is behind
//!   its predecessor's cannot make a session look older).
//! - Expiry is a function of the logged times alone: every replica
//!   applying the same entries removes the same sessions at the same
//!   index.

use std::collections::{BTreeMap, BTreeSet};

/// How long a session may stay unused before it is removed: one hour. A
/// client that retries a request after that long may see it executed
/// twice; one that stays quiet that long has long given up on it.
pub const SESSION_TTL_MS: u64 = 60 * 60 * 1000;

/// Returns the time a proposing replica stamps a request with: its wall
/// clock in ms since the Unix epoch (0 if the clock is set before the
/// epoch: sessions then never expire by it). Replicas judge expiry by the
/// logged stamp, never by their own clock.
pub fn logged_time_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
        })
}

/// What a server remembers about one client in one scope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session<R> {
    /// The sequence number of the client's last executed request
    /// (non-zero).
    pub last_seq: u64,
    /// The reply that request got.
    pub reply: R,
    /// When the session was last used, in ms since the Unix epoch by the
    /// logged leader clock (0 when the log carried no time).
    pub used_ms: u64,
}

/// How a request relates to its client's session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionCheck<'a, R> {
    /// A request the session has not seen: execute it.
    New,
    /// The client's last executed request again: answer its reply.
    Repeat(&'a R),
    /// A request older than the client's last: refuse it.
    Stale {
        /// The client's last executed sequence number.
        last_seq: u64,
    },
}

/// The sessions of every client, by scope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionTable<S, R> {
    records: BTreeMap<(S, u64), Session<R>>,
    by_use: BTreeSet<(u64, S, u64)>,
}

impl<S, R> Default for SessionTable<S, R> {
    fn default() -> SessionTable<S, R> {
        SessionTable {
            records: BTreeMap::new(),
            by_use: BTreeSet::new(),
        }
    }
}

impl<S: Ord + Clone, R> SessionTable<S, R> {
    /// Returns an empty table.
    pub fn new() -> SessionTable<S, R> {
        SessionTable::default()
    }

    /// Returns the number of sessions.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Returns whether there is no session.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Returns the session of `client` in `scope`.
    pub fn get(&self, scope: &S, client: u64) -> Option<&Session<R>> {
        self.records.get(&(scope.clone(), client))
    }

    /// Returns every session, ordered by scope then client.
    pub fn iter(&self) -> impl Iterator<Item = (&S, u64, &Session<R>)> {
        self.records
            .iter()
            .map(|((scope, client), session)| (scope, *client, session))
    }

    /// Returns how request `seq` of `client` in `scope` relates to the
    /// client's session.
    pub fn check(&self, scope: &S, client: u64, seq: u64) -> SessionCheck<'_, R> {
        match self.get(scope, client) {
            Some(session) if seq == session.last_seq => SessionCheck::Repeat(&session.reply),
            Some(session) if seq < session.last_seq => SessionCheck::Stale {
                last_seq: session.last_seq,
            },
            _ => SessionCheck::New,
        }
    }

    /// Records that `client` executed request `seq` in `scope` at `now_ms`
    /// and got `reply`.
    pub fn record(&mut self, scope: S, client: u64, seq: u64, reply: R, now_ms: u64) {
        let key = (scope, client);
        if let Some(session) = self.records.get_mut(&key) {
            mark_used(&mut self.by_use, session, &key.0, client, now_ms);
            session.last_seq = seq;
            session.reply = reply;
            return;
        }
        self.by_use.insert((now_ms, key.0.clone(), client));
        let session = Session {
            last_seq: seq,
            reply,
            used_ms: now_ms,
        };
        self.records.insert(key, session);
    }

    /// Records that `client` used its session in `scope` at `now_ms` (a
    /// repeated request): it stays alive a TTL longer.
    pub fn touch(&mut self, scope: &S, client: u64, now_ms: u64) {
        if let Some(session) = self.records.get_mut(&(scope.clone(), client)) {
            mark_used(&mut self.by_use, session, scope, client, now_ms);
        }
    }

    /// Inserts a session as decoded from storage or a snapshot, replacing
    /// any of the same client and scope.
    pub fn insert(&mut self, scope: S, client: u64, session: Session<R>) {
        self.unindex(&scope, client);
        self.by_use.insert((session.used_ms, scope.clone(), client));
        self.records.insert((scope, client), session);
    }

    /// Removes every session unused for longer than `ttl_ms` at `now_ms`
    /// (idle time `now_ms - used_ms` past `ttl_ms`); returns their (scope,
    /// client), oldest first.
    pub fn expire(&mut self, now_ms: u64, ttl_ms: u64) -> Vec<(S, u64)> {
        let mut expired = Vec::new();
        while let Some((used_ms, _, _)) = self.by_use.first()
            && now_ms.saturating_sub(*used_ms) > ttl_ms
        {
            let (_, scope, client) = self.by_use.pop_first().expect("checked above");
            self.records.remove(&(scope.clone(), client));
            expired.push((scope, client));
        }
        expired
    }

    /// Removes every session of `scope` (a shard that left); returns their
    /// clients.
    pub fn remove_scope(&mut self, scope: &S) -> Vec<u64> {
        let clients: Vec<u64> = self
            .records
            .range((scope.clone(), 0)..=(scope.clone(), u64::MAX))
            .map(|((_, client), _)| *client)
            .collect();
        for &client in &clients {
            self.unindex(scope, client);
            self.records.remove(&(scope.clone(), client));
        }
        clients
    }

    /// Drops the index entry of a session; returns its last use.
    fn unindex(&mut self, scope: &S, client: u64) -> Option<u64> {
        let used_ms = self.get(scope, client)?.used_ms;
        self.by_use.remove(&(used_ms, scope.clone(), client));
        Some(used_ms)
    }
}

/// Moves the last use of `session` (of `client` in `scope`) to `now_ms`,
/// and its entry in `by_use` with it, unless it is that late already: a
/// clock behind the last use never makes a session older.
fn mark_used<S: Ord + Clone, R>(
    by_use: &mut BTreeSet<(u64, S, u64)>,
    session: &mut Session<R>,
    scope: &S,
    client: u64,
    now_ms: u64,
) {
    if now_ms <= session.used_ms {
        return;
    }
    by_use.remove(&(session.used_ms, scope.clone(), client));
    by_use.insert((now_ms, scope.clone(), client));
    session.used_ms = now_ms;
}

#[cfg(test)]
mod tests {
    use super::*;

    // Goal: the at-most-once answers: a new seq executes, the last one is a
    // repeat with its reply, an older one is stale.
    #[test]
    fn a_request_is_new_a_repeat_or_stale() {
        let mut table = SessionTable::<(), &str>::new();
        assert_eq!(table.check(&(), 7, 1), SessionCheck::New);
        table.record((), 7, 3, "third", 1_000);
        assert_eq!(table.check(&(), 7, 3), SessionCheck::Repeat(&"third"));
        assert_eq!(table.check(&(), 7, 2), SessionCheck::Stale { last_seq: 3 });
        assert_eq!(table.check(&(), 7, 4), SessionCheck::New);
        assert_eq!(table.check(&(), 8, 3), SessionCheck::New);
    }

    // Goal: sessions idle past the TTL go, in order of last use, and only
    // those; a touch keeps one alive; a clock that went back never makes a
    // session older.
    #[test]
    fn sessions_idle_past_the_ttl_expire_and_a_touch_keeps_one() {
        let mut table = SessionTable::<u32, u64>::new();
        table.record(1, 10, 1, 100, 1_000);
        table.record(2, 20, 1, 200, 2_000);
        table.record(1, 30, 1, 300, 3_000);
        table.touch(&1, 10, 2_500);
        table.record(2, 20, 2, 201, 500);
        assert_eq!(table.get(&2, 20).map(|s| s.used_ms), Some(2_000));
        assert_eq!(table.expire(3_000, 1_000), Vec::<(u32, u64)>::new());
        assert_eq!(table.expire(3_400, 1_000), vec![(2, 20)]);
        assert_eq!(table.expire(3_600, 1_000), vec![(1, 10)]);
        assert_eq!(table.len(), 1);
        assert_eq!(table.get(&1, 30).map(|s| s.reply), Some(300));
        assert_eq!(table.expire(u64::MAX, 0), vec![(1, 30)]);
        assert!(table.is_empty());
    }

    // Goal: a later write moves its session's last use, so the session
    // expires a TTL after that write, not after the first one.
    #[test]
    fn a_later_write_keeps_its_session_alive() {
        let mut table = SessionTable::<u32, u64>::new();
        table.record(1, 10, 1, 100, 1_000);
        table.record(1, 10, 2, 101, 5_000);
        assert_eq!(table.expire(5_500, 1_000), Vec::<(u32, u64)>::new());
        let session = table.get(&1, 10).map(|s| (s.last_seq, s.reply, s.used_ms));
        assert_eq!(session, Some((2, 101, 5_000)));
        assert_eq!(table.expire(6_001, 1_000), vec![(1, 10)]);
        assert!(table.is_empty());
    }

    // Goal: a scope's sessions are removed together, the others kept, and
    // the index stays exact (nothing removed expires later).
    #[test]
    fn removing_a_scope_removes_only_its_sessions() {
        let mut table = SessionTable::<u32, ()>::new();
        for (scope, client) in [(1, 1), (1, 2), (2, 1), (3, 9)] {
            table.record(scope, client, 1, (), 0);
        }
        assert_eq!(table.remove_scope(&1), vec![1, 2]);
        let left: Vec<(u32, u64)> = table.iter().map(|(s, c, _)| (*s, c)).collect();
        assert_eq!(left, vec![(2, 1), (3, 9)]);
        assert_eq!(table.expire(10, 1), vec![(2, 1), (3, 9)]);
    }
}
