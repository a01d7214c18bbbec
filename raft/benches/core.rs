//! Benchmark of the Raft core alone: a 3-node in-memory cluster (no
//! network, no fsync) committing 64-byte proposals in batches. Reports
//! entries per second (criterion) and heap allocations per committed entry
//! (dhat, in a separate untimed pass).
//!
//! Run: `cargo bench -p raft --bench core`.

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use raft::core::{Config, LogIndex, Membership, Message, Node, NodeId, Role};
use raft::storage::{MemStorage, Storage};

#[global_allocator]
static ALLOCATOR: dhat::Alloc = dhat::Alloc;

const PAYLOAD_BYTES: usize = 64;

/// Three cores wired back to back; messages are delivered in memory.
struct Trio {
    nodes: Vec<Node<MemStorage>>,
    mailbox: Vec<Message>,
    payload: Bytes,
}

impl Trio {
    fn new() -> Trio {
        let membership = Membership::with_voters([NodeId(1), NodeId(2), NodeId(3)]);
        let nodes = (1..=3)
            .map(|id| {
                let mut config = Config::new(NodeId(id));
                config.inflight_messages_max = 1024;
                config.message_bytes_max = 8 << 20;
                config.apply_batch_bytes_max = 64 << 20;
                Node::new(config, MemStorage::new(membership.clone()), id).expect("valid config")
            })
            .collect();
        let mut trio = Trio {
            nodes,
            mailbox: Vec::new(),
            payload: Bytes::from(vec![7u8; PAYLOAD_BYTES]),
        };
        trio.nodes[0].campaign();
        trio.pump();
        assert_eq!(
            trio.nodes[0].status().role,
            Role::Leader,
            "node 1 must win the uncontested election"
        );
        trio
    }

    /// Handles Readies and delivers messages until everything is quiet.
    fn pump(&mut self) {
        loop {
            let mut progressed = false;
            for node in &mut self.nodes {
                while let Some(ready) = node.ready() {
                    progressed = true;
                    node.storage_mut()
                        .persist(&ready.persist_batch())
                        .expect("memory storage");
                    self.mailbox.extend(ready.messages);
                    node.advance();
                }
            }
            for message in self.mailbox.drain(..) {
                progressed = true;
                let index = (message.to.0 - 1) as usize;
                self.nodes[index].step(message);
            }
            if !progressed {
                return;
            }
        }
    }

    /// Proposes `batch` entries at the leader and runs until all commit.
    fn commit_batch(&mut self, batch: usize) -> LogIndex {
        let mut last = LogIndex(0);
        for _ in 0..batch {
            last = self.nodes[0]
                .propose(self.payload.clone())
                .expect("node 1 leads")
                .index;
        }
        self.pump();
        let status = self.nodes[0].status();
        assert!(status.applied >= last, "batch must commit");
        self.compact(status.applied);
        last
    }

    /// Drops applied entries so memory stays flat over millions of entries.
    fn compact(&mut self, index: LogIndex) {
        for node in &mut self.nodes {
            let status = node.status();
            let upto = index.min(status.applied);
            if upto.0 > node.storage().snapshot_meta().index.0 + 4096 {
                node.storage_mut()
                    .compact(upto, status.membership)
                    .expect("an applied index is in the log");
            }
        }
    }
}

fn throughput(c: &mut Criterion) {
    let mut group = c.benchmark_group("core_commit_64b");
    for batch in [1usize, 64, 256, 1024] {
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_with_input(BenchmarkId::from_parameter(batch), &batch, |b, &batch| {
            let mut trio = Trio::new();
            b.iter(|| trio.commit_batch(batch));
        });
    }
    group.finish();
}

/// Counts heap allocations per committed entry for each batch size.
fn allocations() {
    let _profiler = dhat::Profiler::builder().testing().build();
    for batch in [1usize, 64, 256, 1024] {
        let mut trio = Trio::new();
        trio.commit_batch(batch);
        let rounds = (100_000 / batch).max(10);
        let before = dhat::HeapStats::get().total_blocks;
        for _ in 0..rounds {
            trio.commit_batch(batch);
        }
        let blocks = dhat::HeapStats::get().total_blocks - before;
        println!(
            "allocations per committed entry (batch {batch}): {:.2}",
            blocks as f64 / (rounds * batch) as f64
        );
    }
}

criterion_group!(benches, throughput);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    // `cargo test` runs benches once as a smoke test; count allocations
    // only under `cargo bench`.
    if std::env::args().any(|argument| argument == "--bench") {
        allocations();
    }
}
