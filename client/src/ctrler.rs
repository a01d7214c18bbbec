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
use std::time::Duration;

use proto::kv::v1 as pb;
use proto::kv::v1::shard_ctrler_client::ShardCtrlerClient;
use tokio::time::Instant;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status, Streaming};

use crate::error::ClientError;
use crate::retry::Backoff;

/// Deadlines of a [`CtrlerClient`].
#[derive(Debug, Clone)]
pub struct CtrlerClientOptions {
    /// How long one call (all its retries) may take.
    pub deadline: Duration,
    /// How long one attempt at one replica may take before the next.
    pub attempt_timeout: Duration,
    /// How long connecting to one replica may take.
    pub connect_timeout: Duration,
}

impl Default for CtrlerClientOptions {
    /// Returns a 10 s deadline, 3 s per attempt, 1 s to connect.
    fn default() -> CtrlerClientOptions {
        CtrlerClientOptions {
            deadline: Duration::from_secs(10),
            attempt_timeout: Duration::from_secs(3),
            connect_timeout: Duration::from_secs(1),
        }
    }
}

/// One controller replica: its address and a lazily connected channel.
#[derive(Clone)]
struct Server {
    address: String,
    client: ShardCtrlerClient<Channel>,
}

impl Server {
    fn new(address: &str, options: &CtrlerClientOptions) -> Result<Server, ClientError> {
        let address = address.trim();
        let invalid = |reason: String| ClientError::InvalidAddress {
            address: address.to_string(),
            reason,
        };
        if !proto::address::is_valid_server_address(address) {
            return Err(invalid(
                "expected HOST:PORT (host: a DNS name, an IPv4 address or a bracketed IPv6 address; port: 1 to 65535)"
                    .to_string(),
            ));
        }
        let endpoint = Endpoint::from_shared(format!("http://{address}"))
            .map_err(|error| invalid(error.to_string()))?
            .connect_timeout(options.connect_timeout);
        Ok(Server {
            address: address.to_string(),
            client: ShardCtrlerClient::new(endpoint.connect_lazy()),
        })
    }
}

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

/// What to do after one attempt.
enum Step {
    Done(pb::Config),
    Fail(ClientError),
    /// The replica named the leader: try it now.
    Redirect(usize),
    /// Wait, then try again, at the next replica if `next_server`.
    Retry {
        reason: String,
        next_server: bool,
    },
}

/// A client of the controller group.
pub struct CtrlerClient {
    /// Invariant: non-empty.
    servers: Vec<Server>,
    /// Invariant: an index of `servers`; the replica tried first.
    leader: usize,
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
        let servers = addresses
            .iter()
            .map(|address| Server::new(address.as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()?;
        if servers.is_empty() {
            return Err(ClientError::InvalidAddress {
                address: String::new(),
                reason: "no controller address given".to_string(),
            });
        }
        Ok(CtrlerClient {
            servers,
            leader: 0,
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
            servers: self.servers.clone(),
            current: self.leader,
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
        let mut backoff = Backoff::default();
        let mut last_error = String::from("no attempt was made");
        let mut redirected = false;
        while Instant::now() < deadline {
            match self.attempt(&call, deadline).await {
                Step::Done(config) => return Ok(config),
                Step::Fail(error) => return Err(error),
                Step::Redirect(index) => {
                    self.leader = index;
                    last_error = format!("redirected to {}", self.servers[index].address);
                    // Follow one hint at once; a chain of hints (an election
                    // in progress) waits like any retry.
                    if !std::mem::replace(&mut redirected, true) {
                        continue;
                    }
                }
                Step::Retry {
                    reason,
                    next_server,
                } => {
                    last_error = reason;
                    if next_server {
                        self.leader = (self.leader + 1) % self.servers.len();
                    }
                    redirected = false;
                }
            }
            backoff.wait(deadline).await;
        }
        Err(ClientError::DeadlineExceeded {
            millis: self.options.deadline.as_millis() as u64,
            last_error,
        })
    }

    /// Sends `call` once, to the replica believed to lead.
    async fn attempt(&mut self, call: &Call, deadline: Instant) -> Step {
        let server = self.servers[self.leader].clone();
        let left = deadline.saturating_duration_since(Instant::now());
        let timeout = self.options.attempt_timeout.min(left);
        match tokio::time::timeout(timeout, send(server.client, call)).await {
            Err(_) => Step::Retry {
                reason: format!("{}: no answer within {timeout:?}", server.address),
                next_server: true,
            },
            Ok(Err(status)) => classify_status(&server.address, &status),
            Ok(Ok(routed)) => self.route(&server.address, routed),
        }
    }

    /// Returns what to do with a reply's routing status.
    fn route(&mut self, address: &str, routed: Routed) -> Step {
        match pb::Status::try_from(routed.status) {
            Ok(pb::Status::Ok) => match routed.config {
                Some(config) => Step::Done(config),
                None => Step::Fail(ClientError::Server {
                    message: format!("{address} answered OK without a configuration"),
                }),
            },
            Ok(pb::Status::WrongLeader) => match self.server_index(&routed.leader_hint) {
                Some(index) if index != self.leader => Step::Redirect(index),
                _ => Step::Retry {
                    reason: format!("{address}: not the leader"),
                    next_server: true,
                },
            },
            Ok(pb::Status::Timeout) => Step::Retry {
                reason: format!("{address}: the request timed out in the controller"),
                next_server: true,
            },
            other => Step::Fail(ClientError::Server {
                message: format!("{address} answered an unexpected status {other:?}"),
            }),
        }
    }

    /// Returns the index of the replica at `hint`, adding it if it is a
    /// valid address not yet known; `None` for an empty or invalid hint.
    fn server_index(&mut self, hint: &str) -> Option<usize> {
        if hint.is_empty() {
            return None;
        }
        if let Some(index) = self.servers.iter().position(|s| s.address == hint) {
            return Some(index);
        }
        let server = Server::new(hint, &self.options).ok()?;
        self.servers.push(server);
        Some(self.servers.len() - 1)
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

/// Returns what to do after a gRPC error: refusals are final, transient
/// failures are retried at the next replica, the rest is a server error.
fn classify_status(address: &str, status: &Status) -> Step {
    match status.code() {
        Code::InvalidArgument => Step::Fail(ClientError::InvalidArgument {
            message: status.message().to_string(),
        }),
        Code::Unavailable
        | Code::DeadlineExceeded
        | Code::ResourceExhausted
        | Code::Cancelled
        | Code::Aborted
        | Code::Unknown => Step::Retry {
            reason: format!("{address}: {:?}: {}", status.code(), status.message()),
            next_server: true,
        },
        code => Step::Fail(ClientError::Server {
            message: format!("{address}: {code:?}: {}", status.message()),
        }),
    }
}

/// Returns a random non-zero client id, from the OS-seeded hasher keys of
/// the standard library (no extra dependency).
fn random_client_id() -> u64 {
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
    servers: Vec<Server>,
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
