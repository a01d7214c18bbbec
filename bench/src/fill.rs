//! The data the benches of the whole store load and read back: value `n`
//! under key `n`, each value incompressible and its own, written through
//! the client library by concurrent writers.
//!
//! Invariant: [`value`] and [`key`] are pure functions of `n`, so a bench
//! can check any value it reads back without keeping what it wrote.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result, bail};
use client::{CallOptions, Client};

/// How a bench loads its data and checks it back: the flags every bench
/// that fills a cluster shares (`#[command(flatten)]`).
#[derive(clap::Args, Clone, Debug)]
pub struct Load {
    /// Value size in KiB (the data is these values under short keys; 1
    /// loads a million keys per GiB).
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub value_kib: u64,
    /// Concurrent writers loading the data.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=256))]
    pub writers: u64,
    /// Values read back and compared at the end (spread over the data).
    #[arg(long, default_value_t = 256)]
    pub verify_keys: u64,
}

impl Load {
    /// The size of each value in bytes.
    pub fn value_bytes(&self) -> usize {
        (self.value_kib * 1024) as usize
    }

    /// How many values make `mib` MiB (the last one may pass it).
    pub fn keys_in(&self, mib: u64) -> u64 {
        (mib << 20).div_ceil(self.value_bytes() as u64)
    }
}

/// Returns value `n` of `len` bytes: incompressible, its own for each `n`.
pub fn value(n: u64, len: usize) -> Vec<u8> {
    let mut state = (n + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut bytes = Vec::with_capacity(len + 8);
    while bytes.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        bytes.extend_from_slice(&state.to_le_bytes());
    }
    bytes.truncate(len);
    bytes
}

/// Returns key `n`.
pub fn key(n: u64) -> Vec<u8> {
    format!("fill-{n:08}").into_bytes()
}

/// Writes values `0..count` of `value_bytes` each through the client
/// library of the cluster whose controller is at `ctrler`, `writers` at a
/// time.
///
/// # Errors
///
/// The client not connecting, or a write failing after its retries.
pub async fn fill(ctrler: &[String], count: u64, value_bytes: usize, writers: u64) -> Result<()> {
    let client = Arc::new(
        Client::connect(ctrler, CallOptions::default())
            .await
            .context("client")?,
    );
    let next = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..writers)
        .map(|_| {
            let (client, next) = (Arc::clone(&client), Arc::clone(&next));
            tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= count {
                        return Ok::<(), anyhow::Error>(());
                    }
                    client
                        .put(&key(n), &value(n, value_bytes))
                        .await
                        .with_context(|| format!("writing value {n}"))?;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.context("writer task")??;
    }
    Ok(())
}

/// Reads `keys` values spread over `0..count` (the last included) through
/// a new client of the cluster whose controller is at `ctrler` and
/// compares them; returns how many were checked.
///
/// # Errors
///
/// A read failing, or a value missing or different.
pub async fn verify(ctrler: &[String], count: u64, value_bytes: usize, keys: u64) -> Result<u64> {
    let client = Client::connect(ctrler, CallOptions::default())
        .await
        .context("client")?;
    let step = (count / keys.max(1)).max(1);
    let mut sample: Vec<u64> = (0..count).step_by(step as usize).collect();
    if sample.last() != Some(&(count - 1)) {
        sample.push(count - 1);
    }
    for &n in &sample {
        let got = client
            .get(&key(n))
            .await
            .with_context(|| format!("reading value {n} back"))?;
        match got {
            Some(got) if got[..] == value(n, value_bytes)[..] => {}
            Some(got) => bail!(
                "value {n} read back differs ({} bytes, expected {value_bytes})",
                got.len()
            ),
            None => bail!("value {n} is missing"),
        }
    }
    Ok(sample.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Values are reproducible from their number, distinct between numbers,
    // exactly as long as asked, and do not shrink under compression
    // (no long runs).
    #[test]
    fn values_are_reproducible_distinct_and_of_their_length() {
        assert_eq!(value(7, 1000), value(7, 1000));
        assert_ne!(value(7, 1000), value(8, 1000));
        assert_eq!(value(3, 1001).len(), 1001);
        assert_eq!(key(42), b"fill-00000042".to_vec());
        let bytes = value(1, 4096);
        let distinct: std::collections::BTreeSet<u8> = bytes.iter().copied().collect();
        assert!(distinct.len() > 200, "{} distinct bytes", distinct.len());
    }

    // A load of `mib` MiB holds at least that many bytes, with the last
    // value the only one past it.
    #[test]
    fn keys_in_covers_the_size() {
        let load = |value_kib| Load {
            value_kib,
            writers: 1,
            verify_keys: 1,
        };
        assert_eq!(load(256).keys_in(1), 4);
        assert_eq!(load(1).keys_in(1024), 1 << 20);
        assert_eq!(load(3).keys_in(1), 342);
    }
}
