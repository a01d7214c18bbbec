//! [`Client`]: the data client of the sharded store (DESIGN.md "Clients
//! and semantics"): routes each key to the group owning its shard in a
//! cached configuration, follows each group's leader, and retries
//! `WRONG_LEADER`, `WRONG_GROUP` (after refreshing the configuration),
//! `SHARD_NOT_READY` and timeouts with backoff under the call's deadline.
//! A task follows the controller's Watch stream and replaces the cached
//! configuration with each newer one as it commits, so most calls after a
//! reconfiguration go to the new owner at once.
//!
//! Invariants:
//! - Every write carries a `(client id, seq)` session taken from a pool:
//!   one session per concurrent write, each retry of a write with the same
//!   pair, so a write applies at most once; a session's seq grows by one
//!   per write whatever its outcome.
//! - A refusal (`INVALID_ARGUMENT`) is final; no call outlives its
//!   deadline.
//! - The cached configuration only moves forward: the stream never
//!   replaces it with an older one. The stream's task ends with the
//!   client.
//!
//! ```no_run
//! # async fn example() -> Result<(), client::ClientError> {
//! let client = client::Client::connect(&["127.0.0.1:7001"], Default::default()).await?;
//! client.put(b"greeting", b"hello").await?;
//! client.append(b"greeting", b", world").await?;
//! assert_eq!(client.get(b"greeting").await?.as_deref(), Some(&b"hello, world"[..]));
//! # Ok(())
//! # }
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use proto::kv::v1 as pb;
use proto::kv::v1::shard_kv_client::ShardKvClient;
use tokio::time::Instant;
use tonic::transport::Channel;

use crate::ctrler::{ConfigStream, CtrlerClient, random_client_id};
use crate::error::ClientError;
use crate::replicas::{Attempt, CallOptions, Replicas};
use crate::retry::Backoff;

/// What a group answered, for the routing loop.
enum Answer<T> {
    /// Served.
    Served(T),
    /// The group does not own the shard in its configuration.
    WrongGroup,
    /// The shard's data has not arrived at its new owner yet.
    NotReady,
}

/// A write, kept whole so each retry resends it.
#[derive(Clone)]
enum WriteOp {
    Put(Bytes, Bytes),
    Append(Bytes, Bytes),
    Delete(Bytes),
}

impl WriteOp {
    fn key(&self) -> &Bytes {
        match self {
            WriteOp::Put(key, _) | WriteOp::Append(key, _) | WriteOp::Delete(key) => key,
        }
    }
}

/// A client of the sharded store; cheap to share between tasks (`&self`).
pub struct Client {
    ctrler: tokio::sync::Mutex<CtrlerClient>,
    /// Shared, not copied, by each call that routes with it.
    config: Arc<Mutex<Option<Arc<pb::Config>>>>,
    /// Follows the controller's Watch stream into `config`.
    watcher: tokio::task::JoinHandle<()>,
    groups: Mutex<HashMap<u64, Replicas<ShardKvClient<Channel>>>>,
    /// Idle sessions: (client id, next seq).
    sessions: Mutex<Vec<(u64, u64)>>,
    options: CallOptions,
}

impl Client {
    /// Returns a client of the cluster whose controller replicas are at
    /// `ctrler` (`host:port` each), having read the latest configuration.
    ///
    /// # Errors
    ///
    /// [`ClientError::InvalidAddress`] for a bad address;
    /// [`ClientError::DeadlineExceeded`] if no controller replica answered.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use std::time::Duration;
    /// use client::{CallOptions, Client, ClientError};
    ///
    /// // A malformed address is refused before any network call.
    /// let refused = Client::connect(&["no-port"], CallOptions::default()).await;
    /// assert!(matches!(refused, Err(ClientError::InvalidAddress { .. })));
    ///
    /// // Nothing answers on port 1: the call gives up at its deadline.
    /// let options = CallOptions {
    ///     deadline: Duration::from_millis(300),
    ///     ..CallOptions::default()
    /// };
    /// let unanswered = Client::connect(&["127.0.0.1:1"], options).await;
    /// assert!(matches!(unanswered, Err(ClientError::DeadlineExceeded { .. })));
    /// # }
    /// ```
    pub async fn connect<S: AsRef<str>>(
        ctrler: &[S],
        options: CallOptions,
    ) -> Result<Client, ClientError> {
        let mut controller = CtrlerClient::new(ctrler, options.clone())?;
        let config = controller.query(-1).await?;
        let stream = controller.watch(config.num + 1);
        let config = Arc::new(Mutex::new(Some(Arc::new(config))));
        Ok(Client {
            ctrler: tokio::sync::Mutex::new(controller),
            watcher: tokio::spawn(follow_configs(stream, Arc::clone(&config))),
            config,
            groups: Mutex::new(HashMap::new()),
            sessions: Mutex::new(Vec::new()),
            options,
        })
    }

    /// Returns the value of `key`, or `None` if it has none.
    ///
    /// # Errors
    ///
    /// [`ClientError::InvalidArgument`] for a key past the limits;
    /// [`ClientError::DeadlineExceeded`] if no owner answered in time.
    pub async fn get(&self, key: &[u8]) -> Result<Option<Bytes>, ClientError> {
        let key = Bytes::copy_from_slice(key);
        self.routed(&key, |mut client| {
            let request = pb::GetRequest { key: key.clone() };
            async move {
                let reply = client.get(request).await?.into_inner();
                let value = reply.found.then_some(reply.value);
                Ok(answer(reply.status, reply.leader_hint, value))
            }
        })
        .await
    }

    /// Sets `key` to `value`.
    ///
    /// # Errors
    ///
    /// As [`Client::get`], and a value past the limit is refused. After a
    /// deadline the write may or may not have applied; it never applies
    /// twice.
    pub async fn put(&self, key: &[u8], value: &[u8]) -> Result<(), ClientError> {
        let op = WriteOp::Put(Bytes::copy_from_slice(key), Bytes::copy_from_slice(value));
        self.write(op).await
    }

    /// Appends `value` to `key`'s value (a missing key is created).
    ///
    /// # Errors
    ///
    /// As [`Client::put`]; an Append whose result would pass the value
    /// limit is refused and changes nothing.
    pub async fn append(&self, key: &[u8], value: &[u8]) -> Result<(), ClientError> {
        let op = WriteOp::Append(Bytes::copy_from_slice(key), Bytes::copy_from_slice(value));
        self.write(op).await
    }

    /// Removes `key`.
    ///
    /// # Errors
    ///
    /// As [`Client::put`].
    pub async fn delete(&self, key: &[u8]) -> Result<(), ClientError> {
        self.write(WriteOp::Delete(Bytes::copy_from_slice(key)))
            .await
    }

    /// Sends one write under a session from the pool.
    async fn write(&self, op: WriteOp) -> Result<(), ClientError> {
        let (client_id, seq) = self.take_session();
        let key = op.key().clone();
        let result = self
            .routed(&key, |mut client| {
                let op = op.clone();
                async move {
                    let reply = match op {
                        WriteOp::Put(key, value) => {
                            let request = pb::PutRequest {
                                key,
                                value,
                                client_id,
                                seq,
                            };
                            client.put(request).await?
                        }
                        WriteOp::Append(key, value) => {
                            let request = pb::PutRequest {
                                key,
                                value,
                                client_id,
                                seq,
                            };
                            client.append(request).await?
                        }
                        WriteOp::Delete(key) => {
                            let request = pb::DeleteRequest {
                                key,
                                client_id,
                                seq,
                            };
                            client.delete(request).await?
                        }
                    }
                    .into_inner();
                    Ok(answer(reply.status, reply.leader_hint, ()))
                }
            })
            .await;
        self.return_session(client_id, seq + 1);
        result
    }

    /// Runs `attempt` at the group owning `key`'s shard until it is served
    /// or the deadline passes, refreshing the configuration when the
    /// group says the shard is not its own.
    async fn routed<T, F, Fut>(&self, key: &[u8], mut attempt: F) -> Result<T, ClientError>
    where
        F: FnMut(ShardKvClient<Channel>) -> Fut,
        Fut: Future<Output = Result<Attempt<Answer<T>>, tonic::Status>>,
    {
        let deadline = Instant::now() + self.options.deadline;
        let mut backoff = Backoff::default();
        loop {
            let config = self.cached_config(deadline).await?;
            let gid = owner(&config, key);
            let replicas = match gid.and_then(|gid| self.replicas(gid, &config).transpose()) {
                Some(replicas) => Some(replicas?),
                None => None,
            };
            if let (Some(gid), Some(mut replicas)) = (gid, replicas) {
                let answer = replicas.call(deadline, &mut attempt).await?;
                self.remember_leader(gid, replicas.leader());
                match answer {
                    Answer::Served(value) => return Ok(value),
                    Answer::WrongGroup => self.forget_config(),
                    Answer::NotReady => {}
                }
            } else {
                self.forget_config();
            }
            if Instant::now() >= deadline {
                return Err(ClientError::DeadlineExceeded {
                    millis: self.options.deadline.as_millis() as u64,
                    last_error: format!("no group served the key's shard (group {gid:?})"),
                });
            }
            backoff.wait(deadline).await;
        }
    }

    /// Returns the cached configuration, querying the controller if there
    /// is none.
    async fn cached_config(&self, deadline: Instant) -> Result<Arc<pb::Config>, ClientError> {
        if let Some(config) = self.config.lock().expect("not poisoned").clone() {
            return Ok(config);
        }
        let mut controller = self.ctrler.lock().await;
        if let Some(config) = self.config.lock().expect("not poisoned").clone() {
            return Ok(config);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let config = tokio::time::timeout(left, controller.query(-1))
            .await
            .map_err(|_| ClientError::DeadlineExceeded {
                millis: self.options.deadline.as_millis() as u64,
                last_error: "the controller did not answer".into(),
            })??;
        Ok(remember_config(&self.config, config))
    }

    /// Drops the cached configuration: the next call asks the controller.
    fn forget_config(&self) {
        self.config.lock().expect("not poisoned").take();
    }

    /// Returns (a copy of) the replicas of group `gid`, as `config` lists
    /// them; `None` if it lists no such group.
    fn replicas(
        &self,
        gid: u64,
        config: &pb::Config,
    ) -> Result<Option<Replicas<ShardKvClient<Channel>>>, ClientError> {
        let mut groups = self.groups.lock().expect("not poisoned");
        if let Some(replicas) = groups.get(&gid) {
            return Ok(Some(replicas.clone()));
        }
        let Some(servers) = config.groups.get(&gid) else {
            return Ok(None);
        };
        let replicas = Replicas::new(&servers.servers, ShardKvClient::new, &self.options)?;
        groups.insert(gid, replicas.clone());
        Ok(Some(replicas))
    }

    /// Remembers which replica of `gid` answered last.
    fn remember_leader(&self, gid: u64, leader: usize) {
        if let Some(replicas) = self.groups.lock().expect("not poisoned").get_mut(&gid) {
            replicas.set_leader(leader);
        }
    }

    /// Takes an idle session, or starts a new one.
    fn take_session(&self) -> (u64, u64) {
        self.sessions
            .lock()
            .expect("not poisoned")
            .pop()
            .unwrap_or_else(|| (random_client_id(), 1))
    }

    /// Returns a session to the pool with the seq its next write takes.
    fn return_session(&self, client_id: u64, next_seq: u64) {
        self.sessions
            .lock()
            .expect("not poisoned")
            .push((client_id, next_seq));
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}

/// Puts each configuration `stream` yields into `cache`, until aborted.
/// A broken stream is opened again after a pause.
async fn follow_configs(mut stream: ConfigStream, cache: Arc<Mutex<Option<Arc<pb::Config>>>>) {
    loop {
        match stream.next().await {
            Ok(config) => {
                remember_config(&cache, config);
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Caches `config` unless the cache holds a newer one; returns the one
/// cached.
fn remember_config(cache: &Mutex<Option<Arc<pb::Config>>>, config: pb::Config) -> Arc<pb::Config> {
    let mut cached = cache.lock().expect("not poisoned");
    match &*cached {
        Some(newer) if newer.num > config.num => Arc::clone(newer),
        _ => {
            let config = Arc::new(config);
            *cached = Some(Arc::clone(&config));
            config
        }
    }
}

/// Returns the gid owning `key`'s shard in `config` (`None`: no owner).
fn owner(config: &pb::Config, key: &[u8]) -> Option<u64> {
    let count = u32::try_from(config.shards.len()).ok().filter(|n| *n > 0)?;
    let shard = proto::shard_of_key(key, count) as usize;
    config.shards.get(shard).copied().filter(|gid| *gid != 0)
}

/// Maps a reply's status to what the routing loop does.
fn answer<T>(status: i32, leader_hint: String, value: T) -> Attempt<Answer<T>> {
    match pb::Status::try_from(status) {
        Ok(pb::Status::Ok) => Attempt::Done(Answer::Served(value)),
        Ok(pb::Status::WrongLeader) => Attempt::WrongLeader(leader_hint),
        Ok(pb::Status::WrongGroup) => Attempt::Done(Answer::WrongGroup),
        Ok(pb::Status::ShardNotReady) => Attempt::Done(Answer::NotReady),
        Ok(pb::Status::Timeout) => Attempt::Retry {
            reason: "the request timed out in the group".into(),
            next_server: false,
        },
        Err(_) => Attempt::Fail(ClientError::Server {
            message: format!("a group answered an unknown status {status}"),
        }),
    }
}
