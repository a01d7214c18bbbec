//! [`CtrlerClient`]: a client of the shard controller group (DESIGN.md
//! "Clients and semantics", "Public API").
//!
//! It finds the leader (following `leader_hint`s, else trying each replica in
//! turn), and retries `WRONG_LEADER`, `TIMEOUT`, unreachable replicas and
//! attempts without an answer, with capped exponential backoff, until the
//! caller's deadline.
//!
//! Invariants:
//!
//! - One client id per client (random, non-zero); each write takes the next
//!   `seq` once, and every retry of that write carries the same
//!   `(client_id, seq)`, so the controller applies it at most once and a
//!   retry gets the first answer. A write is in flight at most once at a time
//!   (`&mut self`).
//! - A refusal (`INVALID_ARGUMENT`) is final and never retried.
//! - No call outlives its deadline: attempt timeouts and backoff delays are
//!   cut to what is left of it.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};

use proto::kv::v1 as pb;
use proto::kv::v1::shard_ctrler_client::ShardCtrlerClient;
use tokio::time::Instant;
use tonic::transport::Channel;
use tonic::{Status, Streaming};

use crate::error::ClientError;
use crate::replicas::{Attempt, CallOptions, Replicas, Server};
use crate::retry::Backoff;

/// Deadlines of a [`CtrlerClient`] (the same as every client's).
pub type CtrlerClientOptions = CallOptions;

/// A request of the controller API, kept whole so each retry resends it.
enum Call {
    Join(pb::JoinRequest),
    Leave(pb::LeaveRequest),
    Move(pb::MoveRequest),
    Query(pb::QueryRequest),
}

/// The routing part of a reply, common to `CtrlReply` and `QueryReply`.
struct Routed {
    status: i32,
    leader_hint: String,
    config: Option<pb::Config>,
}

/// A client of the controller group.
pub struct CtrlerClient {
    replicas: Replicas<ShardCtrlerClient<Channel>>,
    client_id: u64,
    /// Invariant: the seq the next write takes; starts at 1.
    next_seq: u64,
    options: CtrlerClientOptions,
}

impl CtrlerClient {
    /// Returns a client of the replicas at `addresses` (`host:port` each),
    /// with a random client id. Connects lazily: no replica needs to be up.
    /// Must be called inside a tokio runtime.
    ///
    /// # Errors
    ///
    /// [`ClientError::InvalidAddress`] for an address that is not
    /// `host:port`, or for an empty list.
    pub fn new<S: AsRef<str>>(
        addresses: &[S],
        options: CtrlerClientOptions,
    ) -> Result<CtrlerClient, ClientError> {
        let replicas = Replicas::new(addresses, ShardCtrlerClient::new, &options)?;
        Ok(CtrlerClient {
            replicas,
            client_id: random_client_id(),
            next_seq: 1,
            options,
        })
    }

    /// Returns this client's id.
    pub fn client_id(&self) -> u64 {
        self.client_id
    }

    /// Returns the seq the next write will carry.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Adds groups (gid -> servers) and returns the configuration created.
    ///
    /// # Errors
    ///
    /// [`ClientError::InvalidArgument`] if the controller refused it (a gid
    /// already present, gid 0, an empty server list, ...);
    /// [`ClientError::DeadlineExceeded`] if no replica answered in time.
    pub async fn join(
        &mut self,
        groups: BTreeMap<u64, Vec<String>>,
    ) -> Result<pb::Config, ClientError> {
        let groups = groups
            .into_iter()
            .map(|(gid, servers)| (gid, pb::ServerList { servers }))
            .collect();
        let (client_id, seq) = self.take_session();
        let request = pb::JoinRequest {
            groups,
            client_id,
            seq,
        };
        self.call(Call::Join(request)).await
    }

    /// Removes groups and returns the configuration created.
    ///
    /// # Errors
    ///
    /// As [`CtrlerClient::join`] (an unknown gid is refused).
    pub async fn leave(&mut self, gids: Vec<u64>) -> Result<pb::Config, ClientError> {
        let (client_id, seq) = self.take_session();
        let request = pb::LeaveRequest {
            gids,
            client_id,
            seq,
        };
        self.call(Call::Leave(request)).await
    }

    /// Gives `shard` to group `gid` and returns the configuration created.
    ///
    /// # Errors
    ///
    /// As [`CtrlerClient::join`] (a shard out of range or an unknown gid is
    /// refused).
    pub async fn move_shard(&mut self, shard: u32, gid: u64) -> Result<pb::Config, ClientError> {
        let (client_id, seq) = self.take_session();
        let request = pb::MoveRequest {
            shard,
            gid,
            client_id,
            seq,
        };
        self.call(Call::Move(request)).await
    }

    /// Returns configuration `num`, or the latest for -1 or a number past the
    /// latest. Linearizable: answered by the leader after a read barrier.
    ///
    /// # Errors
    ///
    /// As [`CtrlerClient::join`] (a number below -1 is refused).
    pub async fn query(&mut self, num: i64) -> Result<pb::Config, ClientError> {
        self.call(Call::Query(pb::QueryRequest { num })).await
    }

    /// Returns a stream of every configuration from `from_num` on, each as
    /// it commits. The stream reconnects to another replica when one fails.
    pub fn watch(&self, from_num: u64) -> ConfigStream {
        ConfigStream {
            servers: self.replicas.servers().to_vec(),
            current: self.replicas.leader(),
            next_num: from_num,
            stream: None,
            options: self.options.clone(),
        }
    }

    /// Returns the session of the next write and advances `seq`, whatever
    /// the write's outcome: a write whose outcome is unknown must never
    /// share its seq with a different request.
    fn take_session(&mut self) -> (u64, u64) {
        let seq = self.next_seq;
        self.next_seq += 1;
        (self.client_id, seq)
    }

    /// Sends `call` until a replica answers for good or the deadline passes.
    async fn call(&mut self, call: Call) -> Result<pb::Config, ClientError> {
        let deadline = Instant::now() + self.options.deadline;
        let call = &call;
        self.replicas
            .call(deadline, |client| async move {
                Ok(route(send(client, call).await?))
            })
            .await
    }
}

/// Returns what to do with a reply's routing status.
fn route(routed: Routed) -> Attempt<pb::Config> {
    match pb::Status::try_from(routed.status) {
        Ok(pb::Status::Ok) => match routed.config {
            Some(config) => Attempt::Done(config),
            None => Attempt::Fail(ClientError::Server {
                message: "a controller replica answered OK without a configuration".into(),
            }),
        },
        Ok(pb::Status::WrongLeader) => Attempt::WrongLeader(routed.leader_hint),
        Ok(pb::Status::Timeout) => Attempt::Retry {
            reason: "the request timed out in the controller".into(),
            next_server: true,
        },
        other => Attempt::Fail(ClientError::Server {
            message: format!("a controller replica answered an unexpected status {other:?}"),
        }),
    }
}

/// Sends one request to one replica.
async fn send(mut client: ShardCtrlerClient<Channel>, call: &Call) -> Result<Routed, Status> {
    let reply = match call {
        Call::Join(request) => client.join(request.clone()).await?.into_inner(),
        Call::Leave(request) => client.leave(request.clone()).await?.into_inner(),
        Call::Move(request) => client.r#move(*request).await?.into_inner(),
        Call::Query(request) => {
            let reply = client.query(*request).await?.into_inner();
            return Ok(Routed {
                status: reply.status,
                leader_hint: reply.leader_hint,
                config: reply.config,
            });
        }
    };
    Ok(Routed {
        status: reply.status,
        leader_hint: reply.leader_hint,
        config: reply.config,
    })
}

/// Returns a random non-zero client id, from the OS-seeded hasher keys of
/// the standard library (no extra dependency).
pub(crate) fn random_client_id() -> u64 {
    loop {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |elapsed| elapsed.as_nanos()),
        );
        let id = hasher.finish();
        if id != 0 {
            return id;
        }
    }
}

/// Every configuration from a number on, as the controller commits them,
/// across replica failures (see [`CtrlerClient::watch`]).
///
/// Invariant: configurations come out in increasing number, without gaps:
/// after a reconnection the stream resumes at the number after the last
/// one returned.
pub struct ConfigStream {
    servers: Vec<Server<ShardCtrlerClient<Channel>>>,
    current: usize,
    next_num: u64,
    stream: Option<Streaming<pb::Config>>,
    options: CtrlerClientOptions,
}

impl ConfigStream {
    /// Returns the next configuration, waiting for it to commit.
    ///
    /// # Errors
    ///
    /// [`ClientError::DeadlineExceeded`] if the stream broke and no replica
    /// accepted a new one within the deadline.
    pub async fn next(&mut self) -> Result<pb::Config, ClientError> {
        loop {
            if self.stream.is_none() {
                self.stream = Some(self.reconnect().await?);
            }
            let stream = self.stream.as_mut().expect("connected just above");
            match stream.message().await {
                Ok(Some(config)) if config.num >= self.next_num => {
                    self.next_num = config.num + 1;
                    return Ok(config);
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => {
                    self.stream = None;
                    self.current = (self.current + 1) % self.servers.len();
                }
            }
        }
    }

    /// Opens a stream at the next replica that accepts one.
    async fn reconnect(&mut self) -> Result<Streaming<pb::Config>, ClientError> {
        let deadline = Instant::now() + self.options.deadline;
        let mut backoff = Backoff::default();
        let mut last_error = String::from("no attempt was made");
        while Instant::now() < deadline {
            let mut server = self.servers[self.current].clone();
            let request = pb::WatchRequest {
                from_num: self.next_num,
            };
            let left = deadline.saturating_duration_since(Instant::now());
            let timeout = self.options.attempt_timeout.min(left);
            match tokio::time::timeout(timeout, server.client.watch(request)).await {
                Ok(Ok(response)) => return Ok(response.into_inner()),
                Ok(Err(status)) => last_error = format!("{}: {status}", server.address),
                Err(_) => last_error = format!("{}: no answer within {timeout:?}", server.address),
            }
            self.current = (self.current + 1) % self.servers.len();
            backoff.wait(deadline).await;
        }
        Err(ClientError::DeadlineExceeded {
            millis: self.options.deadline.as_millis() as u64,
            last_error,
        })
    }
}
