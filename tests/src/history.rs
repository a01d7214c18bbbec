//! [`History`]: the operations concurrent clients ran through
//! `client::Client`, with their call and return times on one logical
//! clock, and the checks run on it at the end of a test: the
//! linearizability checker (the `linearizability` crate) and the count of
//! every appended token in the final values (DESIGN.md "Clients and
//! semantics": at most once; acknowledged means exactly once).
//!
//! Invariants:
//! - Every append writes a token no other append writes
//!   (`{client}.{step};`), so a token seen twice was applied twice.
//! - A call that failed stays pending (no return time): it may or may not
//!   have applied, and the checks allow both, but never twice.
//! - The final reads are recorded too, so the checker also judges that
//!   every acknowledged append is in the final value.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use linearizability::{CheckResult, KvInput, KvOutput, Operation};

/// The checker's search budget per key.
const SEARCH_BUDGET: u64 = 2_000_000;

/// What each client task does.
#[derive(Clone, Copy, Debug)]
pub struct Workload {
    /// The keys the clients share (`k0`, `k1`, ...).
    pub keys: u64,
    /// Steps each client runs at least, even once told to finish.
    pub steps_min: u64,
    /// Steps each client runs at most.
    pub steps_max: u64,
    /// Pause between two steps of a client (none: closed loop).
    pub pace: Duration,
    /// With a shard count, key `n` is the key of shard `n % count`
    /// ([`crate::harness::key_in_shard`]) rather than `k{n}`: with as many
    /// keys as shards, the clients then talk to every group owning a
    /// shard.
    pub spread_over: Option<u32>,
}

impl Workload {
    /// Returns key `n` of the workload.
    pub fn key(&self, n: u64) -> String {
        match self.spread_over {
            Some(count) => {
                let shard = u32::try_from(n % u64::from(count)).expect("below a u32 count");
                crate::harness::key_in_shard(shard, count)
            }
            None => format!("k{n}"),
        }
    }
}

impl Default for Workload {
    /// Returns 3 keys, 24 to 150 steps, no pause.
    fn default() -> Workload {
        Workload {
            keys: 3,
            steps_min: 24,
            steps_max: 150,
            pace: Duration::ZERO,
            spread_over: None,
        }
    }
}

impl Workload {
    /// Returns the lab scenarios' workload: one key per shard of the
    /// lab's configurations, 30 to 5,000 steps, a step every 15 ms at most
    /// per client (the load stays light enough for reconfigurations to
    /// make progress on two cores).
    pub fn lab() -> Workload {
        Workload {
            keys: u64::from(crate::harness::LAB_SHARDS),
            steps_min: 30,
            steps_max: 5_000,
            pace: Duration::from_millis(15),
            spread_over: Some(crate::harness::LAB_SHARDS),
        }
    }
}

/// A history recorder shared by client tasks: a logical clock and the
/// operations with their call and return times.
#[derive(Default)]
pub struct History {
    clock: AtomicU64,
    operations: Mutex<Vec<Operation>>,
    /// Set once the scenario is over: the clients then finish.
    done: AtomicBool,
}

impl History {
    /// Returns an empty history to share.
    pub fn new() -> Arc<History> {
        Arc::new(History::default())
    }

    /// Returns the next time on the logical clock.
    pub fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Tells the clients to finish (after their minimum steps).
    pub fn finish(&self) {
        self.done.store(true, Ordering::SeqCst);
    }

    /// Returns whether the clients were told to finish.
    pub fn finished(&self) -> bool {
        self.done.load(Ordering::SeqCst)
    }

    /// Adds one operation.
    pub fn record(&self, operation: Operation) {
        self.operations
            .lock()
            .expect("not poisoned")
            .push(operation);
    }

    /// Returns the operations recorded so far.
    pub fn operations(&self) -> Vec<Operation> {
        self.operations.lock().expect("not poisoned").clone()
    }
}

/// Runs one client until the scenario is over (`workload.steps_min` steps
/// at least, `steps_max` at most): appends with unique values and reads
/// (every third step) over the workload's keys, each recorded with its call
/// and return times (a failed call stays pending).
pub async fn run_client(
    client: Arc<client::Client>,
    id: u64,
    history: Arc<History>,
    workload: Workload,
) {
    for step in 0..workload.steps_max {
        if step >= workload.steps_min && history.finished() {
            break;
        }
        let key = workload.key((id + step) % workload.keys);
        let read = step % 3 == 2;
        let call = history.tick();
        let (input, output) = if read {
            let value = client.get(key.as_bytes()).await;
            (
                KvInput::Get,
                value.ok().map(|value| read_output(value.as_deref())),
            )
        } else {
            let value = format!("{id}.{step};");
            let written = client.append(key.as_bytes(), value.as_bytes()).await;
            (
                KvInput::Append { value },
                written.ok().map(|()| KvOutput::Written),
            )
        };
        let ret = output.as_ref().map(|_| history.tick());
        history.record(Operation {
            client: id,
            key,
            input,
            output,
            call,
            ret,
        });
        if !workload.pace.is_zero() {
            tokio::time::sleep(workload.pace).await;
        }
    }
}

/// Returns a read's output: a missing key reads as the empty string.
fn read_output(value: Option<&[u8]>) -> KvOutput {
    KvOutput::Value(String::from_utf8_lossy(value.unwrap_or_default()).into_owned())
}

/// Starts clients `1..=count` on `client`.
pub fn spawn_clients(
    client: &Arc<client::Client>,
    count: u64,
    history: &Arc<History>,
    workload: Workload,
) -> Vec<tokio::task::JoinHandle<()>> {
    (1..=count)
        .map(|id| tokio::spawn(run_client(client.clone(), id, history.clone(), workload)))
        .collect()
}

/// Tells the clients to finish and waits for them.
pub async fn finish_clients(history: &History, clients: Vec<tokio::task::JoinHandle<()>>) {
    history.finish();
    for task in clients {
        task.await.expect("a client finishes");
    }
}

/// Reads every key of `workload` once more (retrying until a read
/// answers), recording each read as client 0's; returns the values.
pub async fn read_final(
    client: &client::Client,
    history: &History,
    workload: Workload,
) -> BTreeMap<String, String> {
    let mut values = BTreeMap::new();
    for key in (0..workload.keys).map(|at| workload.key(at)) {
        let value = crate::harness::eventually("a final read", || async {
            let call = history.tick();
            let value = client.get(key.as_bytes()).await.ok()?;
            let ret = history.tick();
            let output = read_output(value.as_deref());
            history.record(Operation {
                client: 0,
                key: key.clone(),
                input: KvInput::Get,
                output: Some(output.clone()),
                call,
                ret: Some(ret),
            });
            match output {
                KvOutput::Value(value) => Some(value),
                KvOutput::Written => None,
            }
        })
        .await;
        values.insert(key, value);
    }
    values
}

/// What a checked history held.
#[derive(Clone, Copy, Debug)]
pub struct Checked {
    /// Operations that returned.
    pub completed: usize,
    /// Appends acknowledged (each found exactly once).
    pub appends_acknowledged: usize,
    /// Appends that failed (each found at most once).
    pub appends_pending: usize,
}

/// Checks the history: linearizable, and in the final `values` every
/// acknowledged append's token exactly once, every pending one at most
/// once, nothing else. Panics naming the first violation.
pub fn check(operations: &[Operation], values: &BTreeMap<String, String>) -> Checked {
    match linearizability::check_kv_history(operations, SEARCH_BUDGET) {
        CheckResult::Ok => {}
        other => panic!("not linearizable: {other:?}"),
    }
    let mut checked = Checked {
        completed: operations.iter().filter(|op| op.ret.is_some()).count(),
        appends_acknowledged: 0,
        appends_pending: 0,
    };
    let mut counts: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for (key, value) in values {
        for token in value.split_inclusive(';') {
            *counts.entry((key.as_str(), token)).or_default() += 1;
        }
    }
    for operation in operations {
        let KvInput::Append { value } = &operation.input else {
            continue;
        };
        let seen = counts
            .remove(&(operation.key.as_str(), value.as_str()))
            .unwrap_or(0);
        if operation.ret.is_some() {
            checked.appends_acknowledged += 1;
            assert_eq!(
                seen, 1,
                "acknowledged append {value:?} to {}",
                operation.key
            );
        } else {
            checked.appends_pending += 1;
            assert!(seen <= 1, "pending append {value:?} applied {seen} times");
        }
    }
    assert!(counts.is_empty(), "values nobody appended: {counts:?}");
    checked
}

/// Reads the final values and checks the whole history ([`check`]);
/// asserts that at least `completed_min` operations returned.
pub async fn read_and_check(
    client: &client::Client,
    history: &History,
    workload: Workload,
    completed_min: usize,
) -> Checked {
    let values = read_final(client, history, workload).await;
    let checked = check(&history.operations(), &values);
    assert!(
        checked.completed >= completed_min,
        "only {} operations completed: {checked:?}",
        checked.completed
    );
    checked
}

/// Concurrent clients under way: their shared data client, the history
/// they record and their tasks.
pub struct Load {
    client: Arc<client::Client>,
    history: Arc<History>,
    workload: Workload,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// Starts `clients` client tasks on `client` running `workload`.
    pub fn start(client: client::Client, clients: u64, workload: Workload) -> Load {
        let client = Arc::new(client);
        let history = History::new();
        let tasks = spawn_clients(&client, clients, &history, workload);
        Load {
            client,
            history,
            workload,
            tasks,
        }
    }

    /// Returns the data client the tasks share.
    pub fn client(&self) -> &client::Client {
        &self.client
    }

    /// Returns how many operations returned so far.
    pub fn completed(&self) -> usize {
        let operations = self.history.operations.lock().expect("not poisoned");
        operations.iter().filter(|op| op.ret.is_some()).count()
    }

    /// Waits until `count` more operations have returned (the load makes
    /// progress between two steps of a scenario).
    pub async fn wait_more(&self, count: usize) {
        let target = self.completed() + count;
        crate::harness::eventually("the clients make progress", || async {
            let running = self.tasks.iter().any(|task| !task.is_finished());
            assert!(running, "the clients ran out of steps or failed");
            (self.completed() >= target).then_some(())
        })
        .await;
    }

    /// Tells the clients to finish, waits for them and drops their data
    /// client (and its connections); returns the history to check later.
    pub async fn stop(self) -> Recorded {
        finish_clients(&self.history, self.tasks).await;
        Recorded {
            history: self.history,
            workload: self.workload,
        }
    }

    /// Tells the clients to finish, waits for them, reads the final values
    /// and checks the whole history ([`read_and_check`]).
    pub async fn finish_and_check(self, completed_min: usize) -> Checked {
        finish_clients(&self.history, self.tasks).await;
        read_and_check(&self.client, &self.history, self.workload, completed_min).await
    }
}

/// The history of clients that finished, to check once the scenario is
/// over.
pub struct Recorded {
    history: Arc<History>,
    workload: Workload,
}

impl Recorded {
    /// Reads the final values through `client` and checks the whole
    /// history ([`read_and_check`]).
    pub async fn check(self, client: &client::Client, completed_min: usize) -> Checked {
        read_and_check(client, &self.history, self.workload, completed_min).await
    }
}
