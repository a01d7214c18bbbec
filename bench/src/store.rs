//! The stores `kvbench` drives, behind one interface so both run the
//! same workload code: ours through the client library (routing to each
//! shard's group leader, sessions, retries), or etcd through its own v3
//! gRPC API (the `etcd-client` crate).
//!
//! Invariants:
//! - A get is linearizable on both: ours through the group's read
//!   barrier, etcd's as a default (non-serializable) range request.
//! - A handle is cheap to clone and clones share connections: one per
//!   process, as a real application would hold.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use client::{CallOptions, Client};

/// Which store a handle talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    /// This project's store, found through its controller replicas.
    Kv,
    /// An etcd v3 cluster, at its client endpoints.
    Etcd,
}

/// A connected store.
#[derive(Clone)]
pub enum Store {
    /// Ours, through the client library.
    Kv(Arc<Client>),
    /// etcd's KV service.
    Etcd(Box<etcd_client::KvClient>),
}

impl Store {
    /// Connects to `target` at `addresses` (the controller replicas for
    /// ours, the client endpoints for etcd).
    pub async fn connect(target: Target, addresses: &[String]) -> Result<Store> {
        if addresses.is_empty() {
            bail!("no address to connect to");
        }
        match target {
            Target::Kv => {
                let client = Client::connect(addresses, CallOptions::default())
                    .await
                    .context("connecting to the controller")?;
                Ok(Store::Kv(Arc::new(client)))
            }
            Target::Etcd => {
                // The deadlines of our client's defaults: 1 s to connect,
                // 10 s per call.
                let options = etcd_client::ConnectOptions::new()
                    .with_connect_timeout(Duration::from_secs(1))
                    .with_timeout(Duration::from_secs(10));
                let cluster = || format!("etcd at {}", addresses.join(","));
                let client = etcd_client::Client::connect(addresses, Some(options))
                    .await
                    .with_context(|| format!("connecting to {}", cluster()))?;
                let mut store = Store::Etcd(Box::new(client.kv_client()));
                // The connection is lazy: one read proves the store answers.
                store
                    .get(b"kvbench-probe")
                    .await
                    .with_context(|| format!("{} does not answer", cluster()))?;
                Ok(store)
            }
        }
    }

    /// Writes `value` under `key`.
    pub async fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        match self {
            Store::Kv(client) => Ok(client.put(key, value).await?),
            Store::Etcd(kv) => {
                kv.put(key, value, None).await?;
                Ok(())
            }
        }
    }

    /// Reads `key`'s value, linearizably; returns whether it was found
    /// (the value itself is dropped unread on both sides alike).
    pub async fn get(&mut self, key: &[u8]) -> Result<bool> {
        match self {
            Store::Kv(client) => Ok(client.get(key).await?.is_some()),
            Store::Etcd(kv) => Ok(!kv.get(key, None).await?.kvs().is_empty()),
        }
    }
}
