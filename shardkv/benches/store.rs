//! Benchmark of one group replica's store over a real RocksDB, without
//! Raft or gRPC: the CPU a Get's read (`GroupReader::get`: restore mark,
//! shard table and key against one view) and a run of applied puts
//! (`GroupStore::apply_batch`: data, sessions and applied index in one
//! unsynced batch) cost. The store serves all 64 shards and holds
//! 10,000 keys of 256 bytes; every measured put overwrites one of them.
//!
//! Run: `cargo bench -p shardkv --bench store`.

use std::collections::BTreeMap;
use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use proto::config::{Config, ConfigNum, GroupId};
use raft::core::{Entry, EntryKind, LogIndex, Term};
use raft::driver::StateMachine;
use raft::storage::RocksStorage;
use shardkv::machine::GroupCommand;
use shardkv::ops::Write;
use shardkv::shards::NextConfig;
use shardkv::store_rocks::{GroupReader, GroupStore};

const SHARDS: u32 = 64;
const KEYS: u64 = 10_000;
const VALUE_BYTES: usize = 256;
/// Writes per applied run, about what a Ready carries under 64 clients.
const RUN_WRITES: u64 = 20;
/// Distinct client sessions the writes come from.
const CLIENTS: u64 = 64;

/// A store of group 1 serving every shard, filled with [`KEYS`] keys, and
/// the next free log index and sequence number per client.
struct Filled {
    _dir: tempfile::TempDir,
    _storage: RocksStorage,
    store: GroupStore,
    reader: GroupReader,
    next_index: u64,
    next_seq: u64,
}

fn key(number: u64) -> Bytes {
    Bytes::from(format!("key-{number:012}"))
}

fn entry(index: u64, command: &GroupCommand) -> Entry {
    Entry {
        term: Term(1),
        index: LogIndex(index),
        kind: EntryKind::Normal,
        data: Bytes::from(command.encode()),
    }
}

impl Filled {
    fn new() -> Filled {
        let dir = tempfile::tempdir().expect("temp dir");
        let storage = RocksStorage::open(dir.path()).expect("open RocksDB");
        let gid = GroupId(1);
        let mut store = GroupStore::open(&storage, gid, SHARDS).expect("open the store");
        let config = GroupCommand::Config(NextConfig {
            config: Config {
                num: ConfigNum(1),
                shards: vec![gid; SHARDS as usize],
                groups: [(gid, vec!["127.0.0.1:1".to_string()])].into(),
            },
            holders: BTreeMap::new(),
        });
        store.apply_batch(&[entry(1, &config)]);
        let reader = store.reader();
        let mut filled = Filled {
            _dir: dir,
            _storage: storage,
            store,
            reader,
            next_index: 2,
            next_seq: 1,
        };
        for first in (0..KEYS).step_by(RUN_WRITES as usize) {
            filled.apply_run(first);
        }
        filled
    }

    /// Applies one run of [`RUN_WRITES`] puts to the keys from `first` on,
    /// from the clients in turn.
    fn apply_run(&mut self, first: u64) {
        let value = Bytes::from(vec![b'v'; VALUE_BYTES]);
        let entries: Vec<Entry> = (0..RUN_WRITES)
            .map(|offset| {
                let number = first + offset;
                let command = GroupCommand::Write {
                    client_id: 1 + number % CLIENTS,
                    seq: self.next_seq + number / CLIENTS,
                    // A logged time 1 ms later per entry: every put
                    // moves its session's last use, as under real load.
                    timestamp_ms: self.next_index,
                    write: Write::Put {
                        key: key(number % KEYS),
                        value: value.clone(),
                    },
                };
                let at = entry(self.next_index, &command);
                self.next_index += 1;
                at
            })
            .collect();
        black_box(self.store.apply_batch(&entries));
    }
}

fn bench_store(c: &mut Criterion) {
    let mut filled = Filled::new();
    let mut group = c.benchmark_group("store");
    group.throughput(Throughput::Elements(1));
    let mut number = 0u64;
    group.bench_function("get", |b| {
        b.iter(|| {
            number = (number + 7919) % KEYS;
            let read = filled.reader.get(&key(number)).expect("readable");
            black_box(read.expect("served").expect("present"));
        });
    });
    group.throughput(Throughput::Elements(RUN_WRITES));
    let mut first = 0u64;
    group.bench_function("apply a run of puts", |b| {
        b.iter(|| {
            // Every client's seq grows past what the fill used, so each
            // put is new to its session and executes.
            filled.next_seq += KEYS;
            filled.apply_run(first);
            first = (first + RUN_WRITES) % KEYS;
        });
    });
    group.finish();
}

criterion_group!(benches, bench_store);
criterion_main!(benches);
