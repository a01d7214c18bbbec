//! Integration tests of the gRPC transport over real sockets: tonic servers
//! running `RaftService` on 127.0.0.1 ephemeral ports, fed by
//! `GrpcTransport`s or by a raw `raft.v1` client.
//!
//! Each server runs on its own tokio runtime, so a test can kill it the way
//! a crashed process dies (every connection closes at once) and start it
//! again on the same port. Every wait has a deadline; nothing sleeps.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use proto::raft::v1 as pb;
use proto::raft::v1::raft_client::RaftClient;
use raft::core::{
    ConfChange, Entry, EntryKind, LogIndex, Membership, Message, MessageBody, NodeId, SnapshotMeta,
    Term,
};
use raft::transport::convert::message_to_proto;
use raft::transport::{
    Faults, FaultyTransport, GrpcTransport, GrpcTransportConfig, RaftService, Transport,
};
use tokio::runtime::Runtime;
use tokio::time::{Instant, timeout};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::Code;

const GROUP: u64 = 7;
const DEADLINE: Duration = Duration::from_secs(20);
const SENDER: NodeId = NodeId(1);
const RECEIVER: NodeId = NodeId(2);

/// A `RaftService` served on its own runtime, like a separate process.
struct ServerProcess {
    address: SocketAddr,
    inbound: raft::transport::InboundReceiver,
    runtime: Option<Runtime>,
}

impl ServerProcess {
    /// Serves group `group` on `address`, with an inbound channel of
    /// `capacity` messages.
    fn start(address: SocketAddr, group: u64, capacity: usize) -> ServerProcess {
        let listener = std::net::TcpListener::bind(address).expect("the port is free");
        listener
            .set_nonblocking(true)
            .expect("socket accepts nonblocking mode");
        let address = listener
            .local_addr()
            .expect("a bound socket has an address");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime starts");
        let (sender, inbound) = raft::transport::inbound_queue(capacity, 64 << 20);
        let service = RaftService::new(group, sender).into_server();
        runtime.spawn(async move {
            let listener =
                tokio::net::TcpListener::from_std(listener).expect("runtime registers socket");
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(TcpListenerStream::new(listener))
                .await
                .expect("the server runs until killed");
        });
        ServerProcess {
            address,
            inbound,
            runtime: Some(runtime),
        }
    }

    /// Starts a server of `GROUP` on a free port.
    fn start_fresh(capacity: usize) -> ServerProcess {
        ServerProcess::start(free_address(), GROUP, capacity)
    }

    /// Returns the next message delivered, failing the test at the deadline.
    async fn next(&mut self) -> Message {
        timeout(DEADLINE, self.inbound.recv())
            .await
            .expect("a message arrives before the deadline")
            .expect("the server is running")
    }

    /// Kills the server: its runtime stops, and once this returns every
    /// connection and the listening socket are closed.
    async fn kill(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            let shutdown = move || runtime.shutdown_timeout(DEADLINE);
            tokio::task::spawn_blocking(shutdown)
                .await
                .expect("the runtime shuts down");
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Returns a free loopback address, outside the ports outgoing
/// connections take (a restart binds it again).
fn free_address() -> SocketAddr {
    let port = test_ports::free_ports(1)[0];
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Reconnects quickly so tests finish fast.
fn fast_config() -> GrpcTransportConfig {
    GrpcTransportConfig {
        backoff_initial: Duration::from_millis(10),
        backoff_max: Duration::from_millis(200),
        ..GrpcTransportConfig::default()
    }
}

fn transport_to(address: SocketAddr) -> GrpcTransport {
    let peers = BTreeMap::from([(RECEIVER, address.to_string())]);
    GrpcTransport::with_config(GROUP, SENDER, peers, fast_config())
}

fn message(body: MessageBody) -> Message {
    Message {
        from: SENDER,
        to: RECEIVER,
        term: Term(3),
        body,
    }
}

fn heartbeat(read_round: u64) -> Message {
    message(MessageBody::Heartbeat {
        commit: LogIndex(1),
        read_round,
    })
}

fn snapshot_chunk(data: Bytes) -> Message {
    let mut membership = Membership::with_voters([NodeId(1), NodeId(2), NodeId(3)]);
    membership.learners.insert(NodeId(4));
    message(MessageBody::SnapshotChunk {
        meta: SnapshotMeta {
            index: LogIndex(50),
            term: Term(2),
            membership,
        },
        cursor: Bytes::new(),
        next_cursor: Bytes::from_static(b"\0key-7\0"),
        crc32: crc32fast::hash(&data),
        data,
        last: false,
    })
}

fn append_with_entries() -> Message {
    let entry = |index, kind, data| Entry {
        term: Term(3),
        index: LogIndex(index),
        kind,
        data,
    };
    message(MessageBody::AppendEntries {
        prev_index: LogIndex(4),
        prev_term: Term(2),
        entries: vec![
            entry(5, EntryKind::Normal, Bytes::from_static(b"put k v")),
            entry(
                6,
                EntryKind::ConfChange,
                ConfChange::PromoteLearner(NodeId(4)).encode(),
            ),
        ],
        commit: LogIndex(5),
    })
}

/// Returns one message of every body kind, with a full 1 MiB snapshot chunk.
fn every_message() -> Vec<Message> {
    let bodies = vec![
        MessageBody::RequestVote {
            last_index: LogIndex(9),
            last_term: Term(2),
            pre_vote: true,
            leadership_transfer: true,
        },
        MessageBody::VoteResponse {
            pre_vote: false,
            granted: true,
            commit: LogIndex(7),
            commit_term: Term(2),
        },
        MessageBody::AppendResponse {
            rejected: true,
            index: LogIndex(8),
            hint_index: LogIndex(6),
            hint_term: Term(1),
        },
        MessageBody::HeartbeatResponse { read_round: 11 },
        MessageBody::SnapshotChunkResponse {
            snapshot_index: LogIndex(50),
            snapshot_term: Term(2),
            next_cursor: Bytes::from_static(b"\0key-7\0"),
        },
        MessageBody::TimeoutNow,
    ];
    let mut messages: Vec<Message> = bodies.into_iter().map(message).collect();
    messages.push(append_with_entries());
    messages.push(heartbeat(10));
    messages.push(snapshot_chunk(Bytes::from(vec![0xab; 1 << 20])));
    messages
}

// Goal: the transport carries every kind of message unchanged and in order.
// Method: send one of each kind through a GrpcTransport to a real server and
// compare what the node's channel receives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_kind_arrives_intact_and_in_order() {
    let mut server = ServerProcess::start_fresh(64);
    let transport = transport_to(server.address);
    let sent = every_message();
    transport.send(sent.clone());
    for expected in sent {
        assert_eq!(server.next().await, expected);
    }
}

// Goal: a snapshot chunk beyond tonic's 4 MiB default message size still
// passes (the limit is raised to 16 MiB on both sides).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunk_larger_than_tonic_default_limit_arrives() {
    let mut server = ServerProcess::start_fresh(4);
    let transport = transport_to(server.address);
    let chunk = snapshot_chunk(Bytes::from(vec![7; 6 << 20]));
    transport.send(vec![chunk.clone()]);
    assert_eq!(server.next().await, chunk);
}

/// Sends heartbeats with rising rounds from `first_round` until one reaches
/// `server`, and returns it. Used where a message may be lost in a stream
/// that broke but whose sender has not noticed yet.
async fn send_until_delivered(
    transport: &dyn Transport,
    server: &mut ServerProcess,
    first_round: u64,
) -> Message {
    let attempts = async {
        for round in first_round.. {
            transport.send(vec![heartbeat(round)]);
            let wait = Duration::from_millis(200);
            if let Ok(Some(message)) = timeout(wait, server.inbound.recv()).await {
                return message;
            }
        }
        unreachable!("rounds do not run out")
    };
    timeout(DEADLINE, attempts)
        .await
        .expect("a message arrives before the deadline")
}

// Goal: a peer that goes down and comes back receives later messages: the
// transport reconnects by itself. Method: kill the server's runtime (all
// connections close), send while it is down, restart it on the same port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_that_restarts_receives_later_messages() {
    let mut server = ServerProcess::start_fresh(64);
    let address = server.address;
    let transport = transport_to(address);
    transport.send(vec![heartbeat(1)]);
    assert_eq!(server.next().await, heartbeat(1));

    server.kill().await;
    transport.send(vec![heartbeat(2)]);
    let mut server = ServerProcess::start(address, GROUP, 64);
    let received = send_until_delivered(&transport, &mut server, 3).await;
    let MessageBody::Heartbeat { read_round, .. } = received.body else {
        panic!("only heartbeats were sent, got {received:?}");
    };
    assert!(
        read_round >= 2,
        "round {read_round} was delivered before the restart"
    );
}

// Goal: a peer that is not up when the transport starts is reached once it
// comes up, and what was queued meanwhile is delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_down_at_start_receives_queued_messages_once_up() {
    let address = free_address();
    let transport = transport_to(address);
    transport.send(vec![heartbeat(1)]);
    let mut server = ServerProcess::start(address, GROUP, 64);
    transport.send(vec![heartbeat(2)]);
    assert_eq!(server.next().await, heartbeat(1));
    assert_eq!(server.next().await, heartbeat(2));
}

// Goal: moving a peer to another address sends later messages there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readdressed_peer_receives_at_its_new_address() {
    let mut old = ServerProcess::start_fresh(64);
    let mut new = ServerProcess::start_fresh(64);
    let transport = transport_to(old.address);
    transport.send(vec![heartbeat(1)]);
    assert_eq!(old.next().await, heartbeat(1));
    transport.set_peer(RECEIVER, new.address.to_string());
    transport.send(vec![heartbeat(2)]);
    assert_eq!(new.next().await, heartbeat(2));
}

async fn raw_client(address: SocketAddr) -> RaftClient<tonic::transport::Channel> {
    RaftClient::connect(format!("http://{address}"))
        .await
        .expect("the server accepts connections")
}

// Goal: a batch of another group, or with a malformed message, is refused
// with INVALID_ARGUMENT and none of it reaches the node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_group_and_malformed_messages_are_refused() {
    let mut server = ServerProcess::start_fresh(64);
    let mut client = raw_client(server.address).await;
    let wrong_group = pb::MessageBatch {
        group: 99,
        messages: vec![message_to_proto(heartbeat(1))],
    };
    let status = timeout(DEADLINE, client.send(tokio_stream::iter([wrong_group])))
        .await
        .expect("the server answers before the deadline")
        .expect_err("a batch of another group is refused");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("99") && status.message().contains('7'),
        "{status:?}"
    );

    let mut no_body = message_to_proto(heartbeat(2));
    no_body.body = None;
    let malformed = pb::MessageBatch {
        group: GROUP,
        messages: vec![message_to_proto(heartbeat(3)), no_body],
    };
    let status = timeout(DEADLINE, client.send(tokio_stream::iter([malformed])))
        .await
        .expect("the server answers before the deadline")
        .expect_err("a malformed message is refused");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        server.inbound.try_recv().is_err(),
        "nothing of a refused batch is delivered"
    );
}

// Goal: a node that does not read its inbound channel never blocks the
// peer's stream: messages beyond the channel's capacity are dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_inbound_channel_drops_without_blocking_the_stream() {
    let mut server = ServerProcess::start_fresh(2);
    let mut client = raw_client(server.address).await;
    let batch = |rounds: std::ops::Range<u64>| pb::MessageBatch {
        group: GROUP,
        messages: rounds
            .map(|round| message_to_proto(heartbeat(round)))
            .collect(),
    };
    let batches = [batch(0..10), batch(10..20), batch(20..30)];
    timeout(DEADLINE, client.send(tokio_stream::iter(batches)))
        .await
        .expect("the stream completes although nobody reads")
        .expect("the server acknowledges the stream");
    assert_eq!(server.next().await, heartbeat(0));
    assert_eq!(server.next().await, heartbeat(1));
    assert!(server.inbound.try_recv().is_err(), "the rest was dropped");
}

// Goal: sending never blocks the node's loop, even towards a peer that is
// unreachable and whose queue is full.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_to_an_unreachable_peer_returns_at_once() {
    let address = free_address();
    let config = GrpcTransportConfig {
        queue_messages_max: 8,
        ..fast_config()
    };
    let peers = BTreeMap::from([(RECEIVER, address.to_string())]);
    let transport = GrpcTransport::with_config(GROUP, SENDER, peers, config);
    let started = Instant::now();
    for round in 0..1000 {
        transport.send(vec![heartbeat(round), message(MessageBody::TimeoutNow)]);
    }
    transport.send(vec![Message {
        to: NodeId(42),
        ..heartbeat(0)
    }]);
    assert!(started.elapsed() < Duration::from_secs(5), "send blocked");
}

// Goal: FaultyTransport drops everything to a partitioned peer, loses
// messages at the loss rate, delays by the delay, and heal restores
// delivery. Method: the stream is ordered, so if a faulted message were
// delivered it would arrive before the message sent after healing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faulty_transport_partitions_loses_delays_and_heals() {
    let mut server = ServerProcess::start_fresh(64);
    let faults = Faults::new(5);
    let transport = FaultyTransport::new(transport_to(server.address), faults.clone());

    faults.partition([RECEIVER]);
    transport.send(vec![heartbeat(1), heartbeat(2)]);
    faults.heal();
    transport.send(vec![heartbeat(3)]);
    assert_eq!(server.next().await, heartbeat(3));

    faults.set_loss(1.0);
    transport.send(vec![heartbeat(4)]);
    faults.set_loss(0.0);
    transport.send(vec![heartbeat(5)]);
    assert_eq!(server.next().await, heartbeat(5));
    assert_eq!(faults.dropped(), 3);

    let delay = Duration::from_millis(300);
    faults.set_delay(delay);
    let started = Instant::now();
    transport.send(vec![heartbeat(6)]);
    assert_eq!(server.next().await, heartbeat(6));
    assert!(
        started.elapsed() >= delay,
        "delivered after {:?}",
        started.elapsed()
    );
}
