//! Replica group server: shards over RocksDB and shard migration (later issue).
