//! Linearizability checker for client histories of the replicated key/value store.
//!
//! This module owns the check that runs on the simulator's client history at the end
//! of a seed: it decides whether the operations clients saw could have been produced
//! by one register per key, changed atomically at some instant between each
//! operation's call and its return (Herlihy & Wing, "Linearizability", 1990).
//!
//! The search is the Wing & Gong depth-first search over the history's call and
//! return events, with Lowe's memoization ("Testing for linearizability", 2017) of
//! every (set of linearized operations, register value) node already explored, as
//! Porcupine implements it. Linearizability is local (compositional), so each key is
//! checked on its own, which keeps every search small. On top of that, the search
//! prunes branches that cannot matter (see `PartitionSearch`): reads the current
//! value explains are linearized at once, pending writes only where a later read
//! sees them, and values no read starts with are merged into one state. The
//! pruning keeps the verdict exact; a test compares it with an exhaustive search.
//!
//! Invariants and conventions:
//! - Operation A precedes operation B if and only if `A.ret < B.call`; equal times
//!   make operations concurrent. Events are therefore sorted by time with calls
//!   before returns at the same time.
//! - An operation whose `ret` is `None` never returned: it may take effect at any
//!   instant after its call, or never. A search succeeds once every operation that
//!   returned is linearized; pending writes are linearized only where they explain
//!   what a read saw.
//! - A `Get` that never returned, or whose output is unknown, carries no
//!   information and is dropped.
//! - A missing key reads as the empty string; `Append` to a missing key behaves as
//!   `Put`.
//! - The memo holds only nodes that are on the current path or have no valid
//!   completion, so pruning on a hit never hides a linearization.
//! - The search budget counts events visited per key; a key that exhausts it is
//!   reported as inconclusive, never as a violation.
//! - Keys are checked in sorted order, so the result is deterministic.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

/// One client operation on one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KvInput {
    /// Sets the key's value.
    Put {
        /// The value written.
        value: String,
    },
    /// Concatenates `value` to the key's current value (the empty string if missing).
    Append {
        /// The suffix written.
        value: String,
    },
    /// Reads the key's current value.
    Get,
}

/// What the client observed when the operation returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KvOutput {
    /// A `Put` or `Append` was acknowledged.
    Written,
    /// A `Get` returned this value; a missing key reads as the empty string.
    Value(String),
}

/// One operation of a client history, with the virtual times it was called and
/// returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation {
    /// The client that issued the operation.
    pub client: u64,
    /// The key the operation reads or writes.
    pub key: String,
    /// What the client asked for.
    pub input: KvInput,
    /// What the client observed; `None` if unknown because the operation never
    /// returned.
    pub output: Option<KvOutput>,
    /// The virtual time the client issued the operation.
    pub call: u64,
    /// The virtual time the client saw the reply; `None` if it never did (crash or
    /// timeout), in which case the operation may have taken effect at any time after
    /// `call`, or never. Invariant: `ret >= call` when present.
    pub ret: Option<u64>,
}

/// The outcome of checking a history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckResult {
    /// Every key's operations are linearizable.
    Ok,
    /// No linearization exists for the operations on `key`.
    Violation {
        /// The first key (in sorted order) whose operations are not linearizable.
        key: String,
        /// Every operation on `key`, sorted by call time.
        operations: Vec<Operation>,
    },
    /// The search on `key` used its whole budget without an answer, and no key was
    /// found in violation.
    Inconclusive {
        /// The first key (in sorted order) whose search ran out of budget.
        key: String,
    },
}

impl CheckResult {
    /// Returns true if the history was proved linearizable.
    pub fn is_ok(&self) -> bool {
        matches!(self, CheckResult::Ok)
    }
}

impl fmt::Display for CheckResult {
    /// Formats the verdict; a violation lists its key's operations, one per line.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckResult::Ok => write!(formatter, "linearizable"),
            CheckResult::Inconclusive { key } => {
                write!(
                    formatter,
                    "inconclusive on key {key:?}: search budget exhausted"
                )
            }
            CheckResult::Violation { key, operations } => {
                write!(formatter, "not linearizable on key {key:?}:")?;
                operations
                    .iter()
                    .try_for_each(|operation| write!(formatter, "\n  {operation}"))
            }
        }
    }
}

impl fmt::Display for Operation {
    /// Formats the operation on one line, e.g. `client 3 append("x") on "k" -> written [10, 25]`.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "client {} ", self.client)?;
        match &self.input {
            KvInput::Put { value } => write!(formatter, "put({value:?})")?,
            KvInput::Append { value } => write!(formatter, "append({value:?})")?,
            KvInput::Get => write!(formatter, "get()")?,
        }
        write!(formatter, " on {:?} -> ", self.key)?;
        match &self.output {
            Some(KvOutput::Written) => write!(formatter, "written")?,
            Some(KvOutput::Value(value)) => write!(formatter, "{value:?}")?,
            None => write!(formatter, "unknown")?,
        }
        match self.ret {
            Some(ret) => write!(formatter, " [{}, {ret}]", self.call),
            None => write!(formatter, " [{}, pending]", self.call),
        }
    }
}

/// Checks that `history` is linearizable with respect to one register per key.
///
/// `search_budget` bounds the number of search steps (events visited) spent on each
/// key; a step costs tens of nanoseconds, and histories of a few thousand
/// operations over tens of keys need well under 10^6 steps per key. Returns the
/// first key in violation if any; otherwise the first key whose search ran out of
/// budget, if any; otherwise [`CheckResult::Ok`]. Memory grows with the steps
/// taken (one memo entry of a few words per node entered).
///
/// # Panics
///
/// Panics if an operation returned before it was called, which is a bug in whatever
/// recorded the history.
pub fn check_kv_history(history: &[Operation], search_budget: u64) -> CheckResult {
    let mut first_inconclusive: Option<&str> = None;
    for (key, operations) in partition_by_key(history) {
        match PartitionSearch::new(&operations).run(search_budget) {
            SearchOutcome::Linearizable => {}
            SearchOutcome::NotLinearizable => {
                return CheckResult::Violation {
                    key: key.to_owned(),
                    operations: operations_on_key(history, key),
                };
            }
            SearchOutcome::BudgetExceeded => {
                first_inconclusive.get_or_insert(key);
            }
        }
    }
    match first_inconclusive {
        Some(key) => CheckResult::Inconclusive {
            key: key.to_owned(),
        },
        None => CheckResult::Ok,
    }
}

/// Returns the operations that constrain each key, keyed in sorted order.
///
/// A `Get` with an unknown output is left out: any value it might have read is
/// consistent with every history.
fn partition_by_key(history: &[Operation]) -> BTreeMap<&str, Vec<&Operation>> {
    let mut partitions: BTreeMap<&str, Vec<&Operation>> = BTreeMap::new();
    for operation in history {
        if let Some(ret) = operation.ret {
            assert!(
                ret >= operation.call,
                "operation returned before it was called: {operation}"
            );
        }
        if operation.input == KvInput::Get
            && (operation.output.is_none() || operation.ret.is_none())
        {
            continue;
        }
        partitions
            .entry(operation.key.as_str())
            .or_default()
            .push(operation);
    }
    partitions
}

/// Returns clones of every operation on `key`, sorted by call time (stable).
fn operations_on_key(history: &[Operation], key: &str) -> Vec<Operation> {
    let mut operations: Vec<Operation> = history
        .iter()
        .filter(|operation| operation.key == key)
        .cloned()
        .collect();
    operations.sort_by_key(|operation| operation.call);
    operations
}

/// The effect of one operation on the register, given the register's value.
#[derive(Debug, PartialEq, Eq)]
enum Transition<'input> {
    /// The operation's observed output is impossible from this value.
    Impossible,
    /// The operation is possible and leaves the value as it was.
    Unchanged,
    /// The operation is possible and sets the value to this.
    Becomes(Cow<'input, str>),
}

/// Returns the effect of `input` on a register holding `current`, if the client
/// could have observed `output` (`None` = unknown, always possible).
fn apply_operation<'input>(
    current: &str,
    input: &'input KvInput,
    output: Option<&KvOutput>,
) -> Transition<'input> {
    match (input, output) {
        (KvInput::Get, None) => Transition::Unchanged,
        (KvInput::Get, Some(KvOutput::Value(observed))) if observed == current => {
            Transition::Unchanged
        }
        (KvInput::Put { value }, None | Some(KvOutput::Written)) => {
            Transition::Becomes(Cow::Borrowed(value))
        }
        (KvInput::Append { value }, None | Some(KvOutput::Written)) => {
            let mut combined = String::with_capacity(current.len() + value.len());
            combined.push_str(current);
            combined.push_str(value);
            Transition::Becomes(Cow::Owned(combined))
        }
        // A read of another value, or an output of the wrong kind for the input.
        _ => Transition::Impossible,
    }
}

/// A register value, interned: equal values have equal ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct StateId(u32);

impl StateId {
    /// The empty string, the value of a missing key.
    const EMPTY: StateId = StateId(0);
    /// Any value that no read of the partition starts with. No read can observe
    /// such a value or anything appended to it, so until the next `Put` these
    /// values behave alike and the search treats them as one.
    const UNREADABLE: StateId = StateId(u32::MAX);
}

/// Interns register values so that the memo and the undo stack hold small ids
/// instead of (possibly long) strings.
struct StateInterner {
    /// Invariant: `ids[values[i]] == StateId(i)` for every `i`.
    ids: HashMap<String, StateId>,
    values: Vec<String>,
    /// The distinct outputs of the partition's reads, sorted.
    read_values: Vec<String>,
}

impl StateInterner {
    /// Returns an interner holding only the empty string, for a partition whose
    /// reads are `operations`' completed `Get`s.
    fn new(operations: &[&Operation]) -> Self {
        let mut read_values: Vec<String> = operations
            .iter()
            .filter_map(|operation| match (&operation.input, &operation.output) {
                (KvInput::Get, Some(KvOutput::Value(seen))) => Some(seen.clone()),
                _ => None,
            })
            .collect();
        read_values.sort_unstable();
        read_values.dedup();
        StateInterner {
            ids: HashMap::from([(String::new(), StateId::EMPTY)]),
            values: vec![String::new()],
            read_values,
        }
    }

    /// Returns the id of `value`, assigning a new one if it was never seen, or
    /// [`StateId::UNREADABLE`] if no read starts with it.
    fn intern(&mut self, value: Cow<'_, str>) -> StateId {
        if let Some(&id) = self.ids.get(value.as_ref()) {
            return id;
        }
        if !self.is_readable(&value) {
            return StateId::UNREADABLE;
        }
        let id = StateId(
            u32::try_from(self.values.len())
                .ok()
                .filter(|&id| id != StateId::UNREADABLE.0)
                .expect("fewer than 2^32 - 1 register values per key"),
        );
        let value = value.into_owned();
        self.values.push(value.clone());
        self.ids.insert(value, id);
        id
    }

    /// Returns true if some read's output starts with `value`.
    fn is_readable(&self, value: &str) -> bool {
        // Strings between `value` and one starting with it also start with it, so
        // the least read not below `value` is the one to look at.
        let candidate = self
            .read_values
            .partition_point(|read| read.as_str() < value);
        self.read_values
            .get(candidate)
            .is_some_and(|read| read.starts_with(value))
    }

    /// Returns the value interned as `id`, which must not be
    /// [`StateId::UNREADABLE`].
    fn value(&self, id: StateId) -> &str {
        assert_ne!(id, StateId::UNREADABLE, "an unreadable value is not stored");
        &self.values[id.0 as usize]
    }
}

/// The set of operations the search has linearized, encoded compactly for the memo.
///
/// Operations are indexed with the completed ones first, in call order, then the
/// pending ones. A completed operation can only be linearized while every completed
/// operation whose return precedes its call already is, so the completed members
/// are a prefix plus a short window: the memo stores the prefix length and the
/// window's words instead of the whole set.
struct LinearizedSet {
    /// Bit `i` is set if completed operation `i` is linearized.
    completed: Vec<u64>,
    /// Invariant: every completed operation below `completed_prefix` is linearized,
    /// and the one at `completed_prefix` (if any) is not.
    completed_prefix: usize,
    completed_count: usize,
    /// Bit `i` is set if pending operation `completed_count + i` is linearized.
    pending: Vec<u64>,
}

impl LinearizedSet {
    /// Returns an empty set over `completed_count` completed operations followed by
    /// `pending_count` pending ones.
    fn new(completed_count: usize, pending_count: usize) -> Self {
        LinearizedSet {
            completed: vec![0; completed_count.div_ceil(64)],
            completed_prefix: 0,
            completed_count,
            pending: vec![0; pending_count.div_ceil(64)],
        }
    }

    /// Returns true if `index` is a completed operation.
    fn is_completed(&self, index: usize) -> bool {
        index < self.completed_count
    }

    /// Adds operation `index` to the set.
    fn insert(&mut self, index: usize) {
        if !self.is_completed(index) {
            set_bit(&mut self.pending, index - self.completed_count, true);
            return;
        }
        set_bit(&mut self.completed, index, true);
        while self.completed_prefix < self.completed_count
            && bit(&self.completed, self.completed_prefix)
        {
            self.completed_prefix += 1;
        }
    }

    /// Removes operation `index` from the set.
    fn remove(&mut self, index: usize) {
        if !self.is_completed(index) {
            set_bit(&mut self.pending, index - self.completed_count, false);
            return;
        }
        set_bit(&mut self.completed, index, false);
        self.completed_prefix = self.completed_prefix.min(index);
    }

    /// Appends to `key` an encoding that is equal for equal sets and differs for
    /// different sets: the prefix length, the pending words (a fixed number per
    /// partition), then the completed words from the one holding the prefix's end
    /// to the last non-zero one (all bits below `completed_prefix` are set).
    fn encode(&self, key: &mut Vec<u64>) {
        key.push(self.completed_prefix as u64);
        key.extend_from_slice(&self.pending);
        let first_word = self.completed_prefix / 64;
        let window = &self.completed[first_word.min(self.completed.len())..];
        let used = window
            .iter()
            .rposition(|&word| word != 0)
            .map_or(0, |last| last + 1);
        key.extend_from_slice(&window[..used]);
    }
}

/// Returns bit `index` of `words`.
fn bit(words: &[u64], index: usize) -> bool {
    words[index / 64] & (1 << (index % 64)) != 0
}

/// Sets bit `index` of `words` to `value`.
fn set_bit(words: &mut [u64], index: usize, value: bool) {
    if value {
        words[index / 64] |= 1 << (index % 64);
    } else {
        words[index / 64] &= !(1 << (index % 64));
    }
}

/// Whether a point in time is an operation's call or its return. Calls order before
/// returns at equal times, so that an operation returning at `t` is concurrent with
/// one called at `t`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Moment {
    Call,
    Return,
}

/// One entry of the event list.
#[derive(Clone, Copy, Debug)]
enum Event {
    /// The head or tail of the list.
    Sentinel,
    /// The call of operation `operation`, whose return is at position
    /// `return_event` (`None` if the operation never returned).
    Call {
        operation: usize,
        return_event: Option<usize>,
    },
    /// The return of an operation.
    Return,
}

/// The call and return events of one partition as a doubly linked list sorted by
/// time, from which linearized operations are unlinked and relinked in LIFO order
/// (Knuth's dancing links).
struct EventList {
    /// Invariant: position 0 is the head sentinel and the last position the tail
    /// sentinel; both are never unlinked.
    events: Vec<Event>,
    next: Vec<usize>,
    previous: Vec<usize>,
}

impl EventList {
    /// Position of the head sentinel.
    const HEAD: usize = 0;

    /// Returns the list of call and return events of `operations`, sorted by time
    /// with calls before returns at equal times.
    fn new(operations: &[&Operation]) -> Self {
        let mut moments: Vec<(u64, Moment, usize)> = Vec::with_capacity(operations.len() * 2);
        for (index, operation) in operations.iter().enumerate() {
            moments.push((operation.call, Moment::Call, index));
            if let Some(ret) = operation.ret {
                moments.push((ret, Moment::Return, index));
            }
        }
        moments.sort_unstable();
        // Positions are shifted by one for the head sentinel.
        let mut return_events = vec![None; operations.len()];
        for (offset, &(_, moment, index)) in moments.iter().enumerate() {
            if moment == Moment::Return {
                return_events[index] = Some(offset + 1);
            }
        }
        let mut events = Vec::with_capacity(moments.len() + 2);
        events.push(Event::Sentinel);
        events.extend(moments.iter().map(|&(_, moment, index)| match moment {
            Moment::Call => Event::Call {
                operation: index,
                return_event: return_events[index],
            },
            Moment::Return => Event::Return,
        }));
        events.push(Event::Sentinel);
        let tail = events.len() - 1;
        EventList {
            next: (1..=tail).chain([tail]).collect(),
            previous: [Self::HEAD].into_iter().chain(0..tail).collect(),
            events,
        }
    }

    /// Returns the number of return events.
    fn return_count(&self) -> usize {
        self.events
            .iter()
            .filter(|event| matches!(event, Event::Return))
            .count()
    }

    /// Returns the position of the first event still linked.
    fn first(&self) -> usize {
        self.next[Self::HEAD]
    }

    /// Returns the position of the event linked after `position`.
    fn next(&self, position: usize) -> usize {
        self.next[position]
    }

    /// Returns the event at `position`.
    fn event(&self, position: usize) -> Event {
        self.events[position]
    }

    /// Unlinks the call event at `call_position` and its return event, if any.
    /// Returns true if the operation had a return event.
    fn lift(&mut self, call_position: usize) -> bool {
        let Event::Call { return_event, .. } = self.events[call_position] else {
            panic!("only call events are lifted, not {call_position}");
        };
        self.unlink(call_position);
        if let Some(return_position) = return_event {
            self.unlink(return_position);
        }
        return_event.is_some()
    }

    /// Relinks what the matching [`EventList::lift`] unlinked; must be called in the
    /// reverse order of the lifts. Returns true if the operation had a return event.
    fn unlift(&mut self, call_position: usize) -> bool {
        let Event::Call { return_event, .. } = self.events[call_position] else {
            panic!("only call events are unlifted, not {call_position}");
        };
        if let Some(return_position) = return_event {
            self.relink(return_position);
        }
        self.relink(call_position);
        return_event.is_some()
    }

    /// Removes `position` from the list, keeping its own links for `relink`.
    fn unlink(&mut self, position: usize) {
        let (before, after) = (self.previous[position], self.next[position]);
        self.next[before] = after;
        self.previous[after] = before;
    }

    /// Puts `position` back between the neighbours it had when unlinked.
    fn relink(&mut self, position: usize) {
        let (before, after) = (self.previous[position], self.next[position]);
        self.next[before] = position;
        self.previous[after] = position;
    }
}

/// How the search of one partition ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SearchOutcome {
    Linearizable,
    NotLinearizable,
    BudgetExceeded,
}

/// The part of a search node that is not the linearized set: the register's value,
/// and whether a pending write still waits for a read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Configuration {
    state: StateId,
    /// True if a pending write was linearized and no `Get` since; a `Put` is then
    /// not allowed (see [`PartitionSearch`]).
    owes_read: bool,
}

/// An operation the search has linearized, kept to backtrack.
struct LinearizedCall {
    call_position: usize,
    before: Configuration,
    /// True if it is a read linearized as soon as the value explained it; such a
    /// choice has no alternative to try when backtracking.
    forced: bool,
}

/// For each pending write, the completed reads that may have observed it.
struct PendingObservers {
    /// For each operation, the pending writes whose value its output contains
    /// (empty unless it is a completed `Get`).
    observed_by_read: Vec<Vec<usize>>,
    /// Invariant: entry `i` counts the reads that contain the value of pending
    /// operation `completed_count + i` and are not linearized.
    unlinearized_observers: Vec<usize>,
    completed_count: usize,
}

impl PendingObservers {
    /// Returns the observers of the pending operations `operations[completed_count..]`
    /// among the completed ones: the reads whose output contains the written value.
    fn new(operations: &[&Operation], completed_count: usize) -> Self {
        let mut observed_by_read = vec![Vec::new(); operations.len()];
        let mut unlinearized_observers = vec![0; operations.len() - completed_count];
        for (offset, pending) in operations[completed_count..].iter().enumerate() {
            let written = match &pending.input {
                KvInput::Put { value } | KvInput::Append { value } => value.as_str(),
                KvInput::Get => continue,
            };
            for (read, completed) in operations[..completed_count].iter().enumerate() {
                let observes = match (&completed.input, &completed.output) {
                    (KvInput::Get, Some(KvOutput::Value(seen))) => seen.contains(written),
                    _ => false,
                };
                if observes {
                    observed_by_read[read].push(completed_count + offset);
                    unlinearized_observers[offset] += 1;
                }
            }
        }
        PendingObservers {
            observed_by_read,
            unlinearized_observers,
            completed_count,
        }
    }

    /// Returns true if pending operation `pending` has a read left to observe it.
    fn has_unlinearized_observer(&self, pending: usize) -> bool {
        self.unlinearized_observers[pending - self.completed_count] > 0
    }

    /// Records that `operation` was linearized (`true`) or unlinearized (`false`).
    fn set_linearized(&mut self, operation: usize, linearized: bool) {
        for &pending in &self.observed_by_read[operation] {
            let count = &mut self.unlinearized_observers[pending - self.completed_count];
            if linearized {
                *count -= 1;
            } else {
                *count += 1;
            }
        }
    }
}

/// The Wing & Gong search, with Lowe's memo, over the operations on one key.
///
/// Three rules prune the search without losing any history that has a
/// linearization, because each only discards linearizations for which an
/// equivalent kept one exists:
/// - A read that the current value explains, and whose call precedes every
///   remaining return, is linearized at once with no alternative: it changes
///   nothing, so moving it to the front of any valid completion keeps it valid.
/// - A linearized pending write must be read before the next `Put` (`owes_read`):
///   if no read sees it before it is overwritten or the history ends, dropping it
///   leaves a valid linearization. Otherwise a pending write called early would be
///   tried again at every step.
/// - A pending write is only linearized while some unlinearized read's output
///   contains its value, since the read that sees it must.
struct PartitionSearch<'history> {
    /// Completed operations in call order, then pending ones in call order.
    operations: Vec<&'history Operation>,
    events: EventList,
    /// Invariant: holds exactly the operations of the calls in `undo_stack`.
    linearized: LinearizedSet,
    observers: PendingObservers,
    /// Lowe's memo: the encoded configuration and `linearized` of every node the
    /// search has entered. Invariant: each such node is on the current path or has
    /// no valid completion.
    visited: HashSet<Vec<u64>>,
    /// Scratch buffer for building memo entries without allocating.
    memo_key: Vec<u64>,
    states: StateInterner,
    /// Cache of the model: the state after operation `.1` from state `.0`, or `None`
    /// if its output is impossible there.
    transitions: HashMap<(StateId, usize), Option<StateId>>,
    current: Configuration,
    undo_stack: Vec<LinearizedCall>,
    /// Invariant: the number of return events still linked in `events`.
    unlinearized_returns: usize,
    /// Events visited so far, the unit of the search budget.
    steps: u64,
}

impl<'history> PartitionSearch<'history> {
    /// Returns a search positioned before any operation is linearized.
    fn new(partition: &[&'history Operation]) -> Self {
        let mut operations = partition.to_vec();
        operations.sort_by_key(|operation| (operation.ret.is_none(), operation.call));
        let completed_count = operations.partition_point(|operation| operation.ret.is_some());
        let events = EventList::new(&operations);
        let unlinearized_returns = events.return_count();
        PartitionSearch {
            linearized: LinearizedSet::new(completed_count, operations.len() - completed_count),
            observers: PendingObservers::new(&operations, completed_count),
            states: StateInterner::new(&operations),
            operations,
            events,
            visited: HashSet::new(),
            memo_key: Vec::new(),
            transitions: HashMap::new(),
            current: Configuration {
                state: StateId::EMPTY,
                owes_read: false,
            },
            undo_stack: Vec::new(),
            unlinearized_returns,
            steps: 0,
        }
    }

    /// Runs the depth-first search: at each node, tries the calls that precede the
    /// first remaining return, in order, and backtracks on reaching that return.
    /// Stops once about `search_budget` events have been visited.
    fn run(mut self, search_budget: u64) -> SearchOutcome {
        let mut position = self.enter_node();
        // Pending operations have no return event, so success does not require them.
        while self.unlinearized_returns > 0 {
            let Some(current) = position else {
                return SearchOutcome::NotLinearizable;
            };
            if self.steps >= search_budget {
                return SearchOutcome::BudgetExceeded;
            }
            self.steps += 1;
            position = match self.events.event(current) {
                Event::Call { operation, .. } => {
                    if self.try_linearize(current, operation, false) {
                        self.enter_node()
                    } else {
                        Some(self.events.next(current))
                    }
                }
                Event::Return => self
                    .backtrack()
                    .map(|call_position| self.events.next(call_position)),
                // Every event before `current` is a call, and a return is still
                // linked, so the scan meets that return before the tail.
                Event::Sentinel => unreachable!("the search reached the tail with returns left"),
            };
        }
        SearchOutcome::Linearizable
    }

    /// Enters the node reached by the last linearization: linearizes the reads the
    /// current value explains, then returns the position to scan from, or `None` if
    /// the search space is exhausted.
    fn enter_node(&mut self) -> Option<usize> {
        while let Some((read_position, read)) = self.find_explained_read() {
            if !self.try_linearize(read_position, read, true) {
                // The node after the read was explored already, so this one fails.
                let call_position = self.backtrack()?;
                return Some(self.events.next(call_position));
            }
        }
        Some(self.events.first())
    }

    /// Returns the position and index of a read, called before every remaining
    /// return, whose output the current value explains.
    fn find_explained_read(&mut self) -> Option<(usize, usize)> {
        let mut position = self.events.first();
        while let Event::Call { operation, .. } = self.events.event(position) {
            self.steps += 1;
            let is_read = self.operations[operation].input == KvInput::Get;
            if is_read && self.transition(operation).is_some() {
                return Some((position, operation));
            }
            position = self.events.next(position);
        }
        None
    }

    /// Linearizes the operation called at `call_position` if the rules allow it,
    /// its output is possible from the current value, and the resulting node is
    /// unexplored. Returns true if it did.
    fn try_linearize(&mut self, call_position: usize, operation: usize, forced: bool) -> bool {
        let Some(next) = self.next_configuration(operation) else {
            return false;
        };
        self.linearized.insert(operation);
        if !self.remember(next) {
            self.linearized.remove(operation);
            return false;
        }
        self.undo_stack.push(LinearizedCall {
            call_position,
            before: self.current,
            forced,
        });
        self.current = next;
        self.observers.set_linearized(operation, true);
        if self.events.lift(call_position) {
            self.unlinearized_returns -= 1;
        }
        true
    }

    /// Returns the configuration after `operation`, or `None` if the pruning rules
    /// forbid it now or its output is impossible from the current value.
    fn next_configuration(&mut self, operation: usize) -> Option<Configuration> {
        let observed: &'history Operation = self.operations[operation];
        let is_pending = !self.linearized.is_completed(operation);
        let owes_read = match observed.input {
            KvInput::Get => false,
            KvInput::Put { .. } if self.current.owes_read => return None,
            KvInput::Put { .. } | KvInput::Append { .. } => {
                if is_pending && !self.observers.has_unlinearized_observer(operation) {
                    return None;
                }
                self.current.owes_read || is_pending
            }
        };
        let state = self.transition(operation)?;
        // A pending write that no read can see any more will never be read.
        if owes_read && state == StateId::UNREADABLE {
            return None;
        }
        Some(Configuration { state, owes_read })
    }

    /// Returns the state after `operation` from the current state, or `None` if
    /// its output is impossible there.
    fn transition(&mut self, operation: usize) -> Option<StateId> {
        let cache_key = (self.current.state, operation);
        if let Some(&cached) = self.transitions.get(&cache_key) {
            return cached;
        }
        let observed = self.operations[operation];
        let output = observed.output.as_ref();
        let next = if self.current.state == StateId::UNREADABLE {
            // No read can see the value; only a `Put` makes it readable again.
            match (
                apply_operation("", &observed.input, output),
                &observed.input,
            ) {
                (Transition::Becomes(value), KvInput::Put { .. }) => {
                    Some(self.states.intern(value))
                }
                (Transition::Becomes(_), _) => Some(StateId::UNREADABLE),
                (Transition::Unchanged | Transition::Impossible, _) => None,
            }
        } else {
            let current = self.states.value(self.current.state);
            match apply_operation(current, &observed.input, output) {
                Transition::Impossible => None,
                Transition::Unchanged => Some(self.current.state),
                Transition::Becomes(value) => Some(self.states.intern(value)),
            }
        };
        self.transitions.insert(cache_key, next);
        next
    }

    /// Records the node (`linearized`, `configuration`) in the memo. Returns false
    /// if it was already there.
    fn remember(&mut self, configuration: Configuration) -> bool {
        self.memo_key.clear();
        self.memo_key
            .push(u64::from(configuration.state.0) << 1 | u64::from(configuration.owes_read));
        self.linearized.encode(&mut self.memo_key);
        if self.visited.contains(self.memo_key.as_slice()) {
            return false;
        }
        self.visited.insert(self.memo_key.clone());
        true
    }

    /// Undoes linearizations up to and including the most recent one that had
    /// alternatives. Returns its call's position, or `None` if nothing is left to
    /// undo (the search space is exhausted).
    fn backtrack(&mut self) -> Option<usize> {
        loop {
            let LinearizedCall {
                call_position,
                before,
                forced,
            } = self.undo_stack.pop()?;
            let Event::Call { operation, .. } = self.events.event(call_position) else {
                panic!("the undo stack holds call positions only");
            };
            self.linearized.remove(operation);
            self.observers.set_linearized(operation, false);
            self.current = before;
            if self.events.unlift(call_position) {
                self.unlinearized_returns += 1;
            }
            if !forced {
                return Some(call_position);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUDGET: u64 = 10_000_000;

    /// Returns a `Put`, acknowledged if `ret` is set.
    fn put(client: u64, key: &str, value: &str, call: u64, ret: Option<u64>) -> Operation {
        Operation {
            client,
            key: key.to_owned(),
            input: KvInput::Put {
                value: value.to_owned(),
            },
            output: ret.map(|_| KvOutput::Written),
            call,
            ret,
        }
    }

    /// Returns an `Append`, acknowledged if `ret` is set.
    fn append(client: u64, key: &str, value: &str, call: u64, ret: Option<u64>) -> Operation {
        Operation {
            input: KvInput::Append {
                value: value.to_owned(),
            },
            ..put(client, key, value, call, ret)
        }
    }

    /// Returns a completed `Get` that saw `seen`.
    fn get(client: u64, key: &str, seen: &str, call: u64, ret: u64) -> Operation {
        Operation {
            client,
            key: key.to_owned(),
            input: KvInput::Get,
            output: Some(KvOutput::Value(seen.to_owned())),
            call,
            ret: Some(ret),
        }
    }

    /// Returns true if `result` is a violation on `expected_key`.
    fn is_violation_on(result: &CheckResult, expected_key: &str) -> bool {
        matches!(result, CheckResult::Violation { key, .. } if key == expected_key)
    }

    // Goal: a history with no overlap, where each read sees the latest write, passes.
    #[test]
    fn sequential_history_is_linearizable() {
        let history = vec![
            get(1, "k", "", 0, 1),
            put(1, "k", "a", 2, Some(3)),
            get(2, "k", "a", 4, 5),
            append(2, "k", "b", 6, Some(7)),
            get(1, "k", "ab", 8, 9),
            put(1, "k", "c", 10, Some(11)),
            get(2, "k", "c", 12, 13),
        ];
        assert_eq!(check_kv_history(&history, BUDGET), CheckResult::Ok);
    }

    // Goal: overlapping operations may take effect in either order, and a read
    // concurrent with a write may see the old or the new value.
    #[test]
    fn concurrent_operations_may_take_effect_in_either_order() {
        for last_writer in ["a", "b"] {
            let history = vec![
                put(1, "k", "a", 0, Some(10)),
                put(2, "k", "b", 5, Some(15)),
                get(3, "k", last_writer, 20, 21),
            ];
            assert_eq!(check_kv_history(&history, BUDGET), CheckResult::Ok);
        }
        for seen in ["", "x"] {
            let history = vec![put(1, "k", "x", 0, Some(10)), get(2, "k", seen, 3, 8)];
            assert_eq!(check_kv_history(&history, BUDGET), CheckResult::Ok);
        }
        // Appends concurrent with each other and with reads.
        let history = vec![
            append(1, "k", "a", 0, Some(10)),
            append(2, "k", "b", 0, Some(10)),
            get(3, "k", "b", 1, 9),
            get(4, "k", "ba", 5, 20),
        ];
        assert_eq!(check_kv_history(&history, BUDGET), CheckResult::Ok);
    }

    // Goal: once a write has returned, a read that starts later must not see the
    // value it overwrote.
    #[test]
    fn stale_read_after_completed_write_is_a_violation() {
        let history = vec![
            put(1, "k", "old", 0, Some(1)),
            put(1, "k", "new", 2, Some(3)),
            get(2, "k", "old", 4, 5),
        ];
        let result = check_kv_history(&history, BUDGET);
        assert!(is_violation_on(&result, "k"), "{result:?}");
    }

    // Goal: a read must return a value some write (or the initial empty value)
    // produced.
    #[test]
    fn read_of_a_value_never_written_is_a_violation() {
        let history = vec![put(1, "k", "a", 0, Some(10)), get(2, "k", "phantom", 5, 15)];
        let result = check_kv_history(&history, BUDGET);
        assert!(is_violation_on(&result, "k"), "{result:?}");
    }

    // Goal: two concurrent appends take effect in one order for everyone; reads
    // that observe both orders cannot be linearized.
    #[test]
    fn two_appends_seen_in_different_orders_is_a_violation() {
        let history = vec![
            append(1, "k", "a", 0, Some(10)),
            append(2, "k", "b", 0, Some(10)),
            get(3, "k", "ab", 11, 12),
            get(4, "k", "ba", 11, 12),
        ];
        let result = check_kv_history(&history, BUDGET);
        assert!(is_violation_on(&result, "k"), "{result:?}");
    }

    // Goal: a write that never returned may take effect long after its call, after
    // completed writes, to explain a later read; or never take effect.
    #[test]
    fn pending_write_may_take_effect_later_to_explain_a_read() {
        for seen in ["late", "done"] {
            let history = vec![
                put(1, "k", "late", 0, None),
                put(2, "k", "done", 10, Some(20)),
                get(3, "k", seen, 50, 60),
            ];
            assert_eq!(check_kv_history(&history, BUDGET), CheckResult::Ok);
        }
        // Seen by one read, then overwritten and not seen again.
        let history = vec![
            append(1, "k", "p", 0, None),
            get(2, "k", "p", 30, 31),
            put(2, "k", "q", 32, Some(33)),
            get(2, "k", "q", 34, 35),
        ];
        assert_eq!(check_kv_history(&history, BUDGET), CheckResult::Ok);
    }

    // Goal: a pending write that no read observed does not need to be linearized,
    // even when linearizing it anywhere would contradict a read.
    #[test]
    fn pending_write_not_needed_is_fine() {
        let history = vec![
            put(1, "k", "a", 0, Some(1)),
            append(2, "k", "never", 2, None),
            get(3, "k", "a", 10, 11),
            get(3, "k", "a", 12, 13),
        ];
        assert_eq!(check_kv_history(&history, BUDGET), CheckResult::Ok);
    }

    // Goal: a pending write cannot take effect before it was called.
    #[test]
    fn pending_write_cannot_explain_a_read_before_its_call() {
        let history = vec![get(1, "k", "early", 0, 5), put(2, "k", "early", 10, None)];
        let result = check_kv_history(&history, BUDGET);
        assert!(is_violation_on(&result, "k"), "{result:?}");
    }

    // Goal: a read that never returned, or whose output is unknown, is ignored
    // whatever it recorded.
    #[test]
    fn pending_read_is_ignored() {
        let mut pending_read = get(2, "k", "phantom", 5, 0);
        pending_read.ret = None;
        let mut unknown_read = get(3, "k", "", 5, 6);
        unknown_read.output = None;
        let history = vec![put(1, "k", "a", 0, Some(1)), pending_read, unknown_read];
        assert_eq!(check_kv_history(&history, BUDGET), CheckResult::Ok);
    }

    // Goal: operations on different keys do not constrain each other, and the
    // violation names the key at fault with its operations sorted by call.
    #[test]
    fn keys_are_checked_independently() {
        // As one register this would be stale; per key it is fine.
        let history = vec![
            put(1, "x", "1", 0, Some(1)),
            put(1, "y", "2", 2, Some(3)),
            get(2, "x", "1", 4, 5),
        ];
        assert_eq!(check_kv_history(&history, BUDGET), CheckResult::Ok);
        let history = vec![
            get(2, "b", "stale", 20, 21),
            put(1, "a", "fine", 0, Some(1)),
            put(1, "b", "new", 10, Some(11)),
            get(2, "a", "fine", 4, 5),
            put(1, "b", "stale", 0, Some(1)),
        ];
        let result = check_kv_history(&history, BUDGET);
        let CheckResult::Violation { key, operations } = result else {
            panic!("expected a violation, got {result:?}");
        };
        assert_eq!(key, "b");
        let calls: Vec<u64> = operations.iter().map(|operation| operation.call).collect();
        assert_eq!(calls, vec![0, 10, 20]);
        assert!(operations.iter().all(|operation| operation.key == "b"));
    }

    // Goal: a violation prints as one readable block naming the key and listing
    // its operations in call order, pending ones marked as such.
    #[test]
    fn violation_displays_its_operations_in_call_order() {
        let history = vec![
            get(2, "k", "b", 5, 6),
            put(1, "k", "a", 0, Some(3)),
            append(3, "k", "c", 4, None),
        ];
        let result = check_kv_history(&history, BUDGET);
        assert_eq!(
            result.to_string(),
            "not linearizable on key \"k\":\n  \
             client 1 put(\"a\") on \"k\" -> written [0, 3]\n  \
             client 3 append(\"c\") on \"k\" -> unknown [4, pending]\n  \
             client 2 get() on \"k\" -> \"b\" [5, 6]"
        );
    }

    // Goal: precedence is strict (A precedes B iff A.ret < B.call), so operations
    // sharing a timestamp are concurrent.
    #[test]
    fn equal_return_and_call_times_are_concurrent() {
        let history = vec![put(1, "k", "a", 0, Some(10)), get(2, "k", "", 10, 12)];
        assert_eq!(check_kv_history(&history, BUDGET), CheckResult::Ok);
        let history = vec![put(1, "k", "a", 0, Some(9)), get(2, "k", "", 10, 12)];
        assert!(is_violation_on(&check_kv_history(&history, BUDGET), "k"));
    }

    // Goal: an output of the wrong kind for its input (a put returning a value)
    // cannot be linearized.
    #[test]
    fn output_of_the_wrong_kind_is_a_violation() {
        let mut history = vec![put(1, "k", "a", 0, Some(1))];
        history[0].output = Some(KvOutput::Value("a".to_owned()));
        assert!(is_violation_on(&check_kv_history(&history, BUDGET), "k"));
    }

    // Goal: a search that runs out of budget reports the key as inconclusive,
    // while a violation found on another key within the budget still wins.
    #[test]
    fn exhausted_budget_is_inconclusive() {
        // Six concurrent appends read back in the reverse of their call order: the
        // search has to try several orders before finding it.
        let mut history: Vec<Operation> = ["a", "b", "c", "d", "e", "f"]
            .into_iter()
            .zip(0..)
            .map(|(value, client)| append(client, "k", value, 0, Some(10)))
            .collect();
        history.push(get(9, "k", "fedcba", 11, 12));
        assert_eq!(check_kv_history(&history, BUDGET), CheckResult::Ok);
        let inconclusive = CheckResult::Inconclusive {
            key: "k".to_owned(),
        };
        assert_eq!(check_kv_history(&history, 3), inconclusive);
        // The phantom read is refuted in three steps: one scan for an explained
        // read, one failed attempt, one backtrack from its return.
        history.push(get(1, "z", "phantom", 0, 1));
        assert!(is_violation_on(&check_kv_history(&history, 3), "z"));
        assert_eq!(check_kv_history(&[], 0), CheckResult::Ok);
    }

    /// A tiny deterministic generator (splitmix64), so the test needs no crate.
    struct SplitMix64 {
        state: u64,
    }

    impl SplitMix64 {
        fn next_u64(&mut self) -> u64 {
            self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut mixed = self.state;
            mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            mixed ^ (mixed >> 31)
        }

        fn below(&mut self, bound: u64) -> u64 {
            self.next_u64() % bound
        }
    }

    /// Shape of a generated history.
    struct Workload {
        clients: u64,
        operations_per_client: u64,
        keys: u64,
        /// Out of 1000 operations, how many never return.
        pending_per_mille: u64,
    }

    /// An operation with the instant it takes effect in the generated execution
    /// (`None` for a pending operation that never does).
    struct Planned {
        operation: Operation,
        effect_time: Option<u64>,
    }

    /// Plans one client's operations: sequential intervals, each with an effect
    /// time inside it; a pending operation takes effect later or never.
    fn plan_client(random: &mut SplitMix64, client: u64, workload: &Workload) -> Vec<Planned> {
        let mut planned = Vec::new();
        let mut now = random.below(20);
        for sequence in 0..workload.operations_per_client {
            let key = format!("key-{}", random.below(workload.keys));
            let value = format!("c{client}s{sequence};");
            let operation = match random.below(10) {
                0..=3 => get(client, &key, "", 0, 0),
                4..=6 => put(client, &key, &value, 0, Some(0)),
                _ => append(client, &key, &value, 0, Some(0)),
            };
            let duration = 1 + random.below(60);
            let pending = random.below(1000) < workload.pending_per_mille;
            let effect_time = if !pending {
                Some(now + random.below(duration + 1))
            } else if random.below(2) == 0 {
                Some(now + random.below(2000))
            } else {
                None
            };
            planned.push(Planned {
                operation: Operation {
                    call: now,
                    ret: (!pending).then_some(now + duration),
                    ..operation
                },
                effect_time,
            });
            now += duration + 1 + random.below(10);
        }
        planned
    }

    /// Returns a history produced by a real sequential execution of randomly
    /// overlapping client operations: each takes effect at its effect time.
    fn generate_history(seed: u64, workload: &Workload) -> Vec<Operation> {
        let mut random = SplitMix64 { state: seed };
        let mut planned: Vec<Planned> = (0..workload.clients)
            .flat_map(|client| plan_client(&mut random, client, workload))
            .collect();
        let mut order: Vec<usize> = (0..planned.len()).collect();
        order.sort_by_key(|&index| {
            (
                planned[index].effect_time.is_none(),
                planned[index].effect_time,
            )
        });
        let mut store: HashMap<String, String> = HashMap::new();
        for index in order {
            let Planned {
                operation,
                effect_time,
            } = &mut planned[index];
            let value = store.entry(operation.key.clone()).or_default();
            let returned = operation.ret.is_some();
            match &operation.input {
                _ if effect_time.is_none() => operation.output = None,
                KvInput::Get => {
                    operation.output = returned.then(|| KvOutput::Value(value.clone()));
                }
                KvInput::Put { value: written } => *value = written.clone(),
                KvInput::Append { value: written } => value.push_str(written),
            }
            if !returned {
                operation.output = None;
            }
        }
        planned
            .into_iter()
            .map(|planned| planned.operation)
            .collect()
    }

    /// Returns the indices of the completed reads in `history`.
    fn completed_reads(history: &[Operation]) -> Vec<usize> {
        (0..history.len())
            .filter(|&index| history[index].input == KvInput::Get && history[index].ret.is_some())
            .collect()
    }

    /// Returns the value a completed read saw.
    fn seen_value(operation: &mut Operation) -> &mut String {
        match &mut operation.output {
            Some(KvOutput::Value(seen)) => seen,
            _ => panic!("a completed read has a value"),
        }
    }

    /// Changes one completed read to a value no write can produce; returns its key.
    fn corrupt_one_read(random: &mut SplitMix64, history: &mut [Operation]) -> String {
        let reads = completed_reads(history);
        let chosen = &mut history[reads[random.below(reads.len() as u64) as usize]];
        seen_value(chosen).push('!');
        chosen.key.clone()
    }

    /// Returns the latest completed read on the key of read `late` that returned
    /// before some completed write was called that itself returned before `late`
    /// was called: that read's value is stale for `late`.
    fn stale_source(history: &[Operation], late: usize) -> Option<usize> {
        let (key, call) = (&history[late].key, history[late].call);
        let on_key = |operation: &&Operation| operation.key == *key;
        let overwritten_before = history
            .iter()
            .filter(on_key)
            .filter(|operation| operation.input != KvInput::Get)
            .filter(|operation| operation.ret.is_some_and(|ret| ret < call))
            .map(|operation| operation.call)
            .max()?;
        completed_reads(history)
            .into_iter()
            .filter(|&read| history[read].key == *key)
            .filter(|&read| {
                history[read]
                    .ret
                    .is_some_and(|ret| ret < overwritten_before)
            })
            .max_by_key(|&read| history[read].ret)
    }

    /// Makes one completed read return the value an earlier read saw before a
    /// completed write that precedes it; returns its key. With unique written
    /// values no later state equals that value, so the history is not
    /// linearizable, but only the real-time order shows it.
    fn make_one_read_stale(random: &mut SplitMix64, history: &mut [Operation]) -> String {
        let reads = completed_reads(history);
        loop {
            let late = reads[random.below(reads.len() as u64) as usize];
            let Some(early) = stale_source(history, late) else {
                continue;
            };
            let stale = seen_value(&mut history[early]).clone();
            let seen = seen_value(&mut history[late]);
            if *seen != stale {
                *seen = stale;
                return history[late].key.clone();
            }
        }
    }

    // Goal: histories from real sequential executions with overlapping intervals and
    // pending writes are linearizable, and corrupting a single read (to a value
    // never written, or to a stale value) makes them a violation on that read's
    // key. Method: seeded splitmix64 workloads, from many keys (the simulator's
    // shape) to one hot key (long concurrent searches).
    #[test]
    fn random_executions_pass_and_a_corrupted_read_is_a_violation() {
        let workloads = [
            Workload {
                clients: 10,
                operations_per_client: 300,
                keys: 20,
                pending_per_mille: 10,
            },
            Workload {
                clients: 8,
                operations_per_client: 400,
                keys: 3,
                pending_per_mille: 10,
            },
            Workload {
                clients: 6,
                operations_per_client: 400,
                keys: 1,
                pending_per_mille: 30,
            },
        ];
        let corruptions = [corrupt_one_read, make_one_read_stale];
        for seed in 0..8 {
            for workload in &workloads {
                let history = generate_history(seed, workload);
                let result = check_kv_history(&history, BUDGET);
                assert_eq!(result, CheckResult::Ok, "seed {seed}");
                let mut random = SplitMix64 { state: seed };
                for corrupt in corruptions {
                    let mut corrupted = history.clone();
                    let key = corrupt(&mut random, &mut corrupted);
                    let result = check_kv_history(&corrupted, BUDGET);
                    assert!(is_violation_on(&result, &key), "seed {seed}: {result:?}");
                }
            }
        }
    }

    /// Returns the register value after `operation` from `value`, or `None` if its
    /// output is impossible; written apart from the checker's model on purpose.
    fn reference_step(value: &str, operation: &Operation) -> Option<String> {
        match (&operation.input, &operation.output) {
            (KvInput::Get, None) => Some(value.to_owned()),
            (KvInput::Get, Some(KvOutput::Value(seen))) => {
                (seen == value).then(|| value.to_owned())
            }
            (KvInput::Put { value: written }, None | Some(KvOutput::Written)) => {
                Some(written.clone())
            }
            (KvInput::Append { value: written }, None | Some(KvOutput::Written)) => {
                Some(format!("{value}{written}"))
            }
            _ => None,
        }
    }

    /// Returns true if the operations on one key have a linearization, trying
    /// every order that respects real time (pending operations may be left out).
    fn reference_linearizable(operations: &[&Operation], done: &mut [bool], value: &str) -> bool {
        let unfinished_returns: Vec<u64> = (0..operations.len())
            .filter(|&index| !done[index])
            .filter_map(|index| operations[index].ret)
            .collect();
        if unfinished_returns.is_empty() {
            return true;
        }
        for candidate in 0..operations.len() {
            let call = operations[candidate].call;
            if done[candidate] || unfinished_returns.iter().any(|&ret| ret < call) {
                continue;
            }
            let Some(next) = reference_step(value, operations[candidate]) else {
                continue;
            };
            done[candidate] = true;
            let found = reference_linearizable(operations, done, &next);
            done[candidate] = false;
            if found {
                return true;
            }
        }
        false
    }

    /// Returns a small random history over two keys, with overlapping intervals,
    /// pending operations and reads of values from a small pool.
    fn small_random_history(random: &mut SplitMix64) -> Vec<Operation> {
        const SEEN: [&str; 8] = ["", "a", "b", "ab", "ba", "aa", "bab", "abb"];
        let count = 1 + random.below(8);
        (0..count)
            .map(|client| {
                let key = if random.below(4) == 0 { "y" } else { "x" };
                let call = random.below(10);
                let ret = (random.below(5) != 0).then(|| call + random.below(6));
                let written = if random.below(2) == 0 { "a" } else { "b" };
                let mut operation = match random.below(3) {
                    0 => get(client, key, SEEN[random.below(8) as usize], call, 0),
                    1 => put(client, key, written, call, ret),
                    _ => append(client, key, written, call, ret),
                };
                operation.ret = ret;
                if ret.is_none() {
                    operation.output = None;
                }
                operation
            })
            .collect()
    }

    // Goal: the pruned, memoized search gives the same verdict as an exhaustive
    // search over every real-time-respecting order. Method: thousands of seeded
    // histories of up to eight operations, many of them not linearizable, with
    // repeated values so that pruning cannot lean on unique writes.
    #[test]
    fn agrees_with_exhaustive_search_on_small_random_histories() {
        let mut random = SplitMix64 { state: 7 };
        let mut verdicts = [0_u32; 2];
        for _ in 0..30_000 {
            let history = small_random_history(&mut random);
            let expected = ["x", "y"].iter().all(|key| {
                let on_key: Vec<&Operation> = history
                    .iter()
                    .filter(|operation| operation.key == *key)
                    .collect();
                reference_linearizable(&on_key, &mut vec![false; on_key.len()], "")
            });
            let result = check_kv_history(&history, BUDGET);
            assert!(
                matches!(result, CheckResult::Ok | CheckResult::Violation { .. }),
                "{result:?}"
            );
            assert_eq!(result.is_ok(), expected, "{history:#?}");
            verdicts[usize::from(expected)] += 1;
        }
        assert!(verdicts.iter().all(|&count| count > 5_000), "{verdicts:?}");
    }
}
