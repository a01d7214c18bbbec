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
//! - `by_use` indexes exactly the records: one `(indexed_ms, scope,
//!   client)` for each, where `indexed_ms` is at most the session's last
//!   use and less than a minute ([`REINDEX_MS`]) before it. Expiry visits
//!   the sessions it removes, and at most once per TTL a busy session
//!   whose entry it re-places; a write moves the entry once a minute, not
//!   every time.
//! - A session's `used_ms` never goes back (a leader whose clock is behind
//!   its predecessor's cannot make a session look older).
//! - Expiry is a function of the logged times alone: every replica
//!   applying the same entries removes the same sessions at the same
//!   index.

use std::collections::btree_map::{Entry, VacantEntry};
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

/// How far a session's last use may run ahead of its entry in the use
/// index before a use moves the entry: one minute. Most writes then leave
/// the index alone (a busy session's entry moves once a minute, not at
/// each write); expiry looks a session up again before removing it.
const REINDEX_MS: u64 = 60 * 1000;

/// A session and when the use index last placed it.
#[derive(Clone, Debug)]
struct Record<R> {
    session: Session<R>,
    /// The time of the session's entry in the use index: at most its last
    /// use, and less than [`REINDEX_MS`] before it.
    indexed_ms: u64,
}

/// What [`SessionTable::execute_once`] did with a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Executed<'a, R> {
    /// A request the session had not seen: executed; the session as now
    /// recorded.
    New(&'a Session<R>),
    /// The client's last executed request again: not executed; the session
    /// (its reply is the first one), its last use moved.
    Repeat(&'a Session<R>),
    /// A request older than the client's last: refused.
    Stale {
        /// The client's last executed sequence number.
        last_seq: u64,
    },
}

/// The sessions of every client, by scope.
#[derive(Clone, Debug)]
pub struct SessionTable<S, R> {
    records: BTreeMap<(S, u64), Record<R>>,
    /// `(indexed_ms, scope, client)` of each record: the expiry order.
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

/// Two tables are equal when they hold the same sessions: the use index is
/// a function of them, up to when each entry last moved.
impl<S: PartialEq, R: PartialEq> PartialEq for SessionTable<S, R> {
    fn eq(&self, other: &SessionTable<S, R>) -> bool {
        self.records.len() == other.records.len()
            && self.records.iter().zip(&other.records).all(
                |((key, record), (other_key, other_record))| {
                    key == other_key && record.session == other_record.session
                },
            )
    }
}

impl<S: Eq, R: Eq> Eq for SessionTable<S, R> {}

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
        self.records
            .get(&(scope.clone(), client))
            .map(|record| &record.session)
    }

    /// Returns every session, ordered by scope then client.
    pub fn iter(&self) -> impl Iterator<Item = (&S, u64, &Session<R>)> {
        self.records
            .iter()
            .map(|((scope, client), record)| (scope, *client, &record.session))
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

    /// Runs request `seq` of `client` in `scope` at `now_ms` at most once,
    /// with one lookup of the session: a new request runs `execute` and its
    /// reply is recorded; a repeat only moves the session's last use; a
    /// stale one changes nothing.
    pub fn execute_once(
        &mut self,
        scope: S,
        client: u64,
        seq: u64,
        now_ms: u64,
        execute: impl FnOnce() -> R,
    ) -> Executed<'_, R> {
        match self.records.entry((scope, client)) {
            Entry::Occupied(entry) => {
                let scope = entry.key().0.clone();
                let record = entry.into_mut();
                let last_seq = record.session.last_seq;
                if seq < last_seq {
                    return Executed::Stale { last_seq };
                }
                if seq > last_seq {
                    record.session.reply = execute();
                    record.session.last_seq = seq;
                }
                mark_used(&mut self.by_use, record, &scope, client, now_ms);
                if seq == last_seq {
                    Executed::Repeat(&record.session)
                } else {
                    Executed::New(&record.session)
                }
            }
            Entry::Vacant(entry) => {
                let reply = execute();
                Executed::New(add(&mut self.by_use, entry, seq, reply, now_ms))
            }
        }
    }

    /// Records that `client` executed request `seq` in `scope` at `now_ms`
    /// and got `reply`.
    pub fn record(&mut self, scope: S, client: u64, seq: u64, reply: R, now_ms: u64) {
        match self.records.entry((scope, client)) {
            Entry::Occupied(entry) => {
                let scope = entry.key().0.clone();
                let record = entry.into_mut();
                record.session.last_seq = seq;
                record.session.reply = reply;
                mark_used(&mut self.by_use, record, &scope, client, now_ms);
            }
            Entry::Vacant(entry) => {
                add(&mut self.by_use, entry, seq, reply, now_ms);
            }
        }
    }

    /// Records that `client` used its session in `scope` at `now_ms` (a
    /// repeated request): it stays alive a TTL longer.
    pub fn touch(&mut self, scope: &S, client: u64, now_ms: u64) {
        if let Some(record) = self.records.get_mut(&(scope.clone(), client)) {
            mark_used(&mut self.by_use, record, scope, client, now_ms);
        }
    }

    /// Inserts a session as decoded from storage or a snapshot, replacing
    /// any of the same client and scope.
    pub fn insert(&mut self, scope: S, client: u64, session: Session<R>) {
        self.unindex(&scope, client);
        self.by_use.insert((session.used_ms, scope.clone(), client));
        let indexed_ms = session.used_ms;
        self.records.insert(
            (scope, client),
            Record {
                session,
                indexed_ms,
            },
        );
    }

    /// Removes every session unused for longer than `ttl_ms` at `now_ms`
    /// (idle time `now_ms - used_ms` past `ttl_ms`); returns their (scope,
    /// client), in the order of the use index (oldest first, to within
    /// [`REINDEX_MS`]). A session whose index entry is that old but that
    /// was used since gets an entry at its last use instead.
    pub fn expire(&mut self, now_ms: u64, ttl_ms: u64) -> Vec<(S, u64)> {
        let mut expired = Vec::new();
        while let Some((indexed_ms, _, _)) = self.by_use.first()
            && now_ms.saturating_sub(*indexed_ms) > ttl_ms
        {
            let (_, scope, client) = self.by_use.pop_first().expect("checked above");
            let key = (scope, client);
            let record = self
                .records
                .get_mut(&key)
                .expect("the index names a record");
            let used_ms = record.session.used_ms;
            if now_ms.saturating_sub(used_ms) > ttl_ms {
                self.records.remove(&key);
                expired.push(key);
            } else {
                record.indexed_ms = used_ms;
                self.by_use.insert((used_ms, key.0, client));
            }
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

    /// Drops the index entry of a session, if there is one.
    fn unindex(&mut self, scope: &S, client: u64) {
        if let Some(record) = self.records.get(&(scope.clone(), client)) {
            self.by_use
                .remove(&(record.indexed_ms, scope.clone(), client));
        }
    }
}

/// Adds the session of the client `entry` is for, at its first request
/// `seq`, with `reply`, used at `now_ms`, and its entry in `by_use`.
fn add<'a, S: Ord + Clone, R>(
    by_use: &mut BTreeSet<(u64, S, u64)>,
    entry: VacantEntry<'a, (S, u64), Record<R>>,
    seq: u64,
    reply: R,
    now_ms: u64,
) -> &'a Session<R> {
    let (scope, client) = entry.key().clone();
    by_use.insert((now_ms, scope, client));
    let record = entry.insert(Record {
        session: Session {
            last_seq: seq,
            reply,
            used_ms: now_ms,
        },
        indexed_ms: now_ms,
    });
    &record.session
}

/// Moves the last use of `record` (of `client` in `scope`) to `now_ms`,
/// unless it is that late already (a clock behind the last use never makes
/// a session older); moves its entry in `by_use` only once the last use is
/// [`REINDEX_MS`] past it.
fn mark_used<S: Ord + Clone, R>(
    by_use: &mut BTreeSet<(u64, S, u64)>,
    record: &mut Record<R>,
    scope: &S,
    client: u64,
    now_ms: u64,
) {
    if now_ms <= record.session.used_ms {
        return;
    }
    record.session.used_ms = now_ms;
    if now_ms - record.indexed_ms < REINDEX_MS {
        return;
    }
    by_use.remove(&(record.indexed_ms, scope.clone(), client));
    by_use.insert((now_ms, scope.clone(), client));
    record.indexed_ms = now_ms;
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

    /// Counts the sessions whose index entry is past `ttl_ms` at `now_ms`
    /// though their last use is not: those expiry must re-place.
    fn lagging(table: &SessionTable<u32, u64>, now_ms: u64, ttl_ms: u64) -> usize {
        table
            .by_use
            .iter()
            .filter(|(indexed, scope, client)| {
                let used = table.get(scope, *client).expect("indexed").used_ms;
                now_ms.saturating_sub(*indexed) > ttl_ms && now_ms.saturating_sub(used) <= ttl_ms
            })
            .count()
    }

    // Goal: expiry is exact whatever the use index's lag: against a model
    // that keeps every session's last use and removes those idle past the
    // TTL, a table driven by the same seeded mix of writes, repeats, touches,
    // clocks that go back and expiries over several hours (so entries lag
    // and are re-placed) removes the same sessions at the same calls and
    // keeps the same last uses.
    #[test]
    fn expiry_matches_a_model_that_keeps_every_last_use() {
        for seed in 1..=20u64 {
            let mut random = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            let mut next = |bound: u64| {
                random ^= random << 13;
                random ^= random >> 7;
                random ^= random << 17;
                random % bound
            };
            let ttl_ms = 3 * REINDEX_MS;
            let mut replaced = 0;
            let mut table = SessionTable::<u32, u64>::new();
            let mut model: BTreeMap<(u32, u64), (u64, u64)> = BTreeMap::new();
            let mut now_ms = 0u64;
            for step in 0..20_000u64 {
                now_ms += next(400);
                let clock = now_ms.saturating_sub(next(3) * next(90_000));
                // The clients in use shift every 1,500 steps, so some go idle.
                let (scope, client) = (next(3) as u32, step / 1_500 * 7 + next(30));
                match next(4) {
                    0 | 1 => {
                        let last = model.get(&(scope, client)).map(|(seq, _)| *seq);
                        let seq = last.map_or(1, |seq| seq + next(2));
                        let executed = table.execute_once(scope, client, seq, clock, || step);
                        let repeat = matches!(executed, Executed::Repeat(_));
                        assert_eq!(repeat, last == Some(seq), "seed {seed} step {step}");
                        let used = model
                            .get(&(scope, client))
                            .map_or(clock, |(_, used)| (*used).max(clock));
                        model.insert((scope, client), (seq, used));
                    }
                    2 => {
                        table.touch(&scope, client, clock);
                        let touched = table.get(&scope, client).map(|s| s.used_ms);
                        let modelled = model.get_mut(&(scope, client)).map(|(_, used)| {
                            *used = (*used).max(clock);
                            *used
                        });
                        assert_eq!(touched, modelled, "seed {seed} step {step}");
                    }
                    _ => {
                        replaced += lagging(&table, now_ms, ttl_ms);
                        let mut expired = table.expire(now_ms, ttl_ms);
                        expired.sort_unstable();
                        let idle: Vec<(u32, u64)> = model
                            .iter()
                            .filter(|(_, (_, used))| now_ms.saturating_sub(*used) > ttl_ms)
                            .map(|(key, _)| *key)
                            .collect();
                        model.retain(|key, _| !idle.contains(key));
                        assert_eq!(expired, idle, "seed {seed} step {step}");
                    }
                }
                let uses: Vec<(u32, u64, u64)> = table
                    .iter()
                    .map(|(s, c, session)| (*s, c, session.used_ms))
                    .collect();
                let modelled: Vec<(u32, u64, u64)> = model
                    .iter()
                    .map(|((s, c), (_, used))| (*s, *c, *used))
                    .collect();
                assert_eq!(uses, modelled, "seed {seed} step {step}");
            }
            assert!(replaced > 0, "seed {seed}: no lagging entry was re-placed");
        }
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
