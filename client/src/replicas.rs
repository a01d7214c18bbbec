//! [`Replicas`]: the servers of one replicated group (the controller, or a
//! replica group) with the one believed to lead, and the one retry loop
//! every call to such a group runs: follow a leader hint at once, else try
//! the next replica after a capped exponential backoff, until an answer
//! for good or the caller's deadline.
//!
//! Invariants:
//! - `leader` is an index of `servers`; the list is never empty.
//! - A refusal (`INVALID_ARGUMENT`) is final and never retried.
//! - No call outlives its deadline: attempt timeouts and backoff delays are
//!   cut to what is left of it.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

use crate::error::ClientError;
use crate::retry::Backoff;

/// Deadlines of a client's calls.
#[derive(Debug, Clone)]
pub struct CallOptions {
    /// How long one call (all its retries) may take.
    pub deadline: Duration,
    /// How long one attempt at one replica may take before the next.
    pub attempt_timeout: Duration,
    /// How long connecting to one replica may take.
    pub connect_timeout: Duration,
}

impl Default for CallOptions {
    /// Returns a 10 s deadline, 3 s per attempt, 1 s to connect.
    fn default() -> CallOptions {
        CallOptions {
            deadline: Duration::from_secs(10),
            attempt_timeout: Duration::from_secs(3),
            connect_timeout: Duration::from_secs(1),
        }
    }
}

/// One replica: its address and a lazily connected gRPC client.
#[derive(Clone)]
pub(crate) struct Server<C> {
    /// `host:port`.
    pub address: String,
    /// The client, connected on first use.
    pub client: C,
}

/// What one attempt at one replica came to.
pub(crate) enum Attempt<T> {
    /// An answer for good.
    Done(T),
    /// A failure retrying cannot fix.
    Fail(ClientError),
    /// The replica does not lead; it named the leader (or nobody: empty).
    WrongLeader(String),
    /// Try again, at the next replica if `next_server`.
    Retry {
        /// Why, for the deadline error.
        reason: String,
        /// Whether to move on to the next replica.
        next_server: bool,
    },
}

/// The servers of one group and the one tried first.
#[derive(Clone)]
pub(crate) struct Replicas<C> {
    servers: Vec<Server<C>>,
    leader: usize,
    connect: fn(Channel) -> C,
    options: CallOptions,
}

impl<C: Clone> Replicas<C> {
    /// Returns the replicas at `addresses`, each client made by `connect`
    /// over a lazy channel.
    ///
    /// # Errors
    ///
    /// [`ClientError::InvalidAddress`] for an address that is not
    /// `host:port`, or for an empty list.
    pub fn new<S: AsRef<str>>(
        addresses: &[S],
        connect: fn(Channel) -> C,
        options: &CallOptions,
    ) -> Result<Replicas<C>, ClientError> {
        let servers = addresses
            .iter()
            .map(|address| server(address.as_ref(), connect, options))
            .collect::<Result<Vec<_>, _>>()?;
        if servers.is_empty() {
            return Err(ClientError::InvalidAddress {
                address: String::new(),
                reason: "no server address given".to_string(),
            });
        }
        Ok(Replicas {
            servers,
            leader: 0,
            connect,
            options: options.clone(),
        })
    }

    /// Returns the servers.
    pub fn servers(&self) -> &[Server<C>] {
        &self.servers
    }

    /// Returns the index of the replica tried first.
    pub fn leader(&self) -> usize {
        self.leader
    }

    /// Sets the replica tried first (an index of `servers`).
    pub fn set_leader(&mut self, leader: usize) {
        if leader < self.servers.len() {
            self.leader = leader;
        }
    }

    /// Runs `attempt` against the replica believed to lead until it
    /// answers for good or `deadline` passes.
    ///
    /// # Errors
    ///
    /// What an attempt failed with for good, or
    /// [`ClientError::DeadlineExceeded`].
    pub async fn call<T, F, Fut>(
        &mut self,
        deadline: Instant,
        mut attempt: F,
    ) -> Result<T, ClientError>
    where
        F: FnMut(C) -> Fut,
        Fut: Future<Output = Result<Attempt<T>, Status>>,
    {
        let mut backoff = Backoff::default();
        let mut last_error = String::from("no attempt was made");
        let mut redirected = false;
        while Instant::now() < deadline {
            let server = self.servers[self.leader].clone();
            let left = deadline.saturating_duration_since(Instant::now());
            let timeout = self.options.attempt_timeout.min(left);
            let outcome = match tokio::time::timeout(timeout, attempt(server.client)).await {
                Err(_) => Attempt::Retry {
                    reason: format!("{}: no answer within {timeout:?}", server.address),
                    next_server: true,
                },
                Ok(Err(status)) => classify_status(&server.address, &status),
                Ok(Ok(outcome)) => outcome,
            };
            match outcome {
                Attempt::Done(value) => return Ok(value),
                Attempt::Fail(error) => return Err(error),
                Attempt::WrongLeader(hint) => match self.server_index(&hint) {
                    Some(index) if index != self.leader => {
                        self.leader = index;
                        last_error = format!("redirected to {}", self.servers[index].address);
                        // Follow one hint at once; a chain of hints (an
                        // election in progress) waits like any retry.
                        if !std::mem::replace(&mut redirected, true) {
                            continue;
                        }
                    }
                    _ => {
                        last_error = format!("{}: not the leader", server.address);
                        self.leader = (self.leader + 1) % self.servers.len();
                        redirected = false;
                    }
                },
                Attempt::Retry {
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

    /// Returns the index of the replica at `hint`, adding it if it is a
    /// valid address not yet known; `None` for an empty or invalid hint.
    fn server_index(&mut self, hint: &str) -> Option<usize> {
        if hint.is_empty() {
            return None;
        }
        if let Some(index) = self.servers.iter().position(|s| s.address == hint) {
            return Some(index);
        }
        self.servers
            .push(server(hint, self.connect, &self.options).ok()?);
        Some(self.servers.len() - 1)
    }
}

/// Returns the replica at `address`, with a lazily connected client.
fn server<C>(
    address: &str,
    connect: fn(Channel) -> C,
    options: &CallOptions,
) -> Result<Server<C>, ClientError> {
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
        client: connect(endpoint.connect_lazy()),
    })
}

/// Returns what to do after a gRPC error: refusals are final, transient
/// failures are retried at the next replica, the rest is a server error.
pub(crate) fn classify_status<T>(address: &str, status: &Status) -> Attempt<T> {
    match status.code() {
        Code::InvalidArgument => Attempt::Fail(ClientError::InvalidArgument {
            message: status.message().to_string(),
        }),
        Code::Unavailable
        | Code::DeadlineExceeded
        | Code::ResourceExhausted
        | Code::Cancelled
        | Code::Aborted
        | Code::Unknown => Attempt::Retry {
            reason: format!("{address}: {:?}: {}", status.code(), status.message()),
            next_server: true,
        },
        code => Attempt::Fail(ClientError::Server {
            message: format!("{address}: {code:?}: {}", status.message()),
        }),
    }
}
