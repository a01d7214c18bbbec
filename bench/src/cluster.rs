//! A local cluster of release binaries for the benches: three
//! `shardctrler` replicas and groups of three `shardkv` (or `raft-node`)
//! replicas, each a child process with its data directory and log file in
//! one temporary directory. Dropping the [`Cluster`] kills every process
//! (SIGKILL) and removes the directory.
//!
//! The binaries are found next to the bench's own executable (build them
//! in the same profile). Ports, from `base_port`: controller replica `i`
//! (1-3) serves gRPC on `base + i` and HTTP on `base + 1000 + i`; group
//! `g` (1-9) replica `r` on `base + 100 g + r` and `base + 1000 + 100 g +
//! r`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use client::{CallOptions, Client, CtrlerClient};

use crate::probe;

/// Replicas per group, controller included.
const REPLICAS: u16 = 3;
/// How long a process may take to become ready (know a leader).
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// The server a group runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `shardkv` replicas: the replica group server.
    ShardKv,
    /// `raft-node` replicas: a bare Raft register map serving the same
    /// public API for every key, without shard checks or sessions.
    RaftNode,
}

impl Kind {
    /// The binary's file name.
    pub fn binary(self) -> &'static str {
        match self {
            Kind::ShardKv => "shardkv",
            Kind::RaftNode => "raft-node",
        }
    }
}

/// One server process.
pub struct Process {
    /// `ctrler-1`, `group-2-3`, ...
    pub name: String,
    /// The running child.
    pub child: Child,
    /// gRPC address, `127.0.0.1:PORT`.
    pub grpc: String,
    /// HTTP address (`/metrics`, `/readyz`).
    pub http: String,
    /// Its stderr (appended to across restarts).
    pub log: PathBuf,
}

impl Process {
    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails with the end of the log if the process has exited.
    pub(crate) fn check_running(&mut self) -> Result<()> {
        if let Ok(Some(status)) = self.child.try_wait() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(20).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            bail!(
                "{} exited ({status}); the end of its log:\n{}",
                self.name,
                tail.join("\n")
            );
        }
        Ok(())
    }
}

/// The replicas of one group.
pub struct Group {
    /// The group id, as joined to the controller.
    pub gid: u64,
    /// What the replicas run.
    pub kind: Kind,
    /// Replica 1, 2, 3.
    pub replicas: Vec<Process>,
    /// The flags each replica was started with, to start it again.
    args: Vec<Vec<String>>,
}

impl Group {
    /// The replicas' gRPC addresses, as joined to the controller.
    pub fn servers(&self) -> Vec<String> {
        self.replicas.iter().map(|p| p.grpc.clone()).collect()
    }

    /// The replicas' process ids.
    pub fn pids(&self) -> Vec<u32> {
        self.replicas.iter().map(Process::pid).collect()
    }

    /// Returns each replica's `/metrics` page (`None` where it did not
    /// answer).
    pub fn pages(&self) -> Vec<Option<String>> {
        self.replicas
            .iter()
            .map(|p| probe::metrics(&p.http))
            .collect()
    }

    /// Returns, for each replica, the sum of the samples of metric `name`
    /// with `labels` (`None` where the replica did not answer or has no
    /// such sample).
    pub fn metric(&self, name: &str, labels: &[(&str, &str)]) -> Vec<Option<f64>> {
        self.replicas
            .iter()
            .map(|p| probe::metrics(&p.http).and_then(|page| probe::sample(&page, name, labels)))
            .collect()
    }
}

/// Controller replicas and groups, killed and removed when dropped.
pub struct Cluster {
    bin_dir: PathBuf,
    base_port: u16,
    /// How often [`Cluster::wait_until`] polls.
    poll: Duration,
    /// The controller replicas.
    pub ctrlers: Vec<Process>,
    /// The groups started, by gid.
    pub groups: BTreeMap<u64, Group>,
    /// Data dirs and logs; removed after the processes are killed.
    dir: tempfile::TempDir,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let processes = self
            .ctrlers
            .iter_mut()
            .chain(self.groups.values_mut().flat_map(|g| g.replicas.iter_mut()));
        for process in processes {
            let _ = process.child.kill();
            let _ = process.child.wait();
        }
    }
}

/// Returns the directory holding the bench's own executable, where the
/// server binaries are expected.
///
/// # Errors
///
/// If the executable's path is unknown.
pub fn bin_dir() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("the bench's own path")?;
    Ok(exe.parent().context("the bench's directory")?.to_path_buf())
}

impl Cluster {
    /// Starts three controller replicas (`shards` shards) on ports from
    /// `base_port` and waits until they know a leader.
    ///
    /// # Errors
    ///
    /// A binary missing, a process exiting, or no leader within 60 s.
    pub async fn start(base_port: u16, shards: u32) -> Result<Cluster> {
        let bin_dir = bin_dir()?;
        for binary in ["shardctrler", "shardkv", "raft-node"] {
            if !bin_dir.join(binary).exists() {
                bail!(
                    "{} not found next to the bench: build it first \
                     (cargo build --release -p shardctrler -p shardkv -p raft-demo)",
                    bin_dir.join(binary).display()
                );
            }
        }
        let dir = tempfile::Builder::new()
            .prefix("kv-bench-")
            .tempdir()
            .context("temporary directory")?;
        std::fs::create_dir_all(dir.path().join("logs")).context("log directory")?;
        let mut cluster = Cluster {
            bin_dir,
            base_port,
            poll: Duration::from_millis(50),
            ctrlers: Vec::new(),
            groups: BTreeMap::new(),
            dir,
        };
        let peers = peer_list(&(1..=REPLICAS).map(|i| base_port + i).collect::<Vec<_>>());
        for i in 1..=REPLICAS {
            let name = format!("ctrler-{i}");
            let grpc = format!("127.0.0.1:{}", base_port + i);
            let http = format!("127.0.0.1:{}", base_port + 1000 + i);
            let data = cluster.dir.path().join(&name);
            let mut args = server_args(i, &grpc, &http, &peers, &data);
            args.extend(["--shards".into(), shards.to_string()]);
            let process = cluster.spawn("shardctrler", name, grpc, http, &args)?;
            cluster.ctrlers.push(process);
        }
        let https: Vec<String> = cluster.ctrlers.iter().map(|p| p.http.clone()).collect();
        cluster
            .wait_until("the controller to elect a leader", READY_TIMEOUT, |_| {
                https.iter().all(|http| probe::ready(http))
            })
            .await?;
        Ok(cluster)
    }

    /// Starts three controller replicas (`shards` shards) and group 1 of
    /// `kind`, joined as the only group; waits until it serves every shard
    /// (a `shardkv` group) and until one write reads back through the
    /// client library.
    ///
    /// # Errors
    ///
    /// As [`Cluster::start`], a wait timing out, or the probe failing.
    pub async fn start_single_group(base_port: u16, shards: u32, kind: Kind) -> Result<Cluster> {
        let mut cluster = Cluster::start(base_port, shards).await?;
        cluster.start_group(1, kind)?;
        cluster.wait_group_ready(1).await?;
        cluster.join(1).await?;
        if kind == Kind::ShardKv {
            cluster
                .wait_until(
                    "the group to serve every shard",
                    Duration::from_secs(60),
                    |c| c.group_serves_all(1, shards),
                )
                .await?;
        }
        let client = Client::connect(&cluster.ctrler_addresses(), CallOptions::default())
            .await
            .context("client")?;
        client.put(b"probe", b"ok").await.context("probe write")?;
        let read = client.get(b"probe").await.context("probe read")?;
        if read.as_deref() != Some(&b"ok"[..]) {
            bail!("the probe write did not read back ({read:?})");
        }
        Ok(cluster)
    }

    /// Sets how often [`Cluster::wait_until`] polls (50 ms at first): each
    /// poll that scrapes `/metrics` costs the servers some CPU.
    pub fn set_poll_interval(&mut self, poll: Duration) {
        self.poll = poll;
    }

    /// Keeps the data dirs and logs when the cluster is dropped (for a
    /// look at RocksDB's own `LOG` statistics after a run).
    pub fn keep_dir(&mut self) {
        self.dir.disable_cleanup(true);
    }

    /// The directory holding the data dirs and logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The controller replicas' gRPC addresses.
    pub fn ctrler_addresses(&self) -> Vec<String> {
        self.ctrlers.iter().map(|p| p.grpc.clone()).collect()
    }

    /// Group `gid` (started).
    ///
    /// # Panics
    ///
    /// If the group was not started.
    pub fn group(&self, gid: u64) -> &Group {
        &self.groups[&gid]
    }

    /// Starts the three replicas of group `gid` (1 to 9) running `kind`,
    /// without waiting for them or joining them.
    ///
    /// # Errors
    ///
    /// A bad gid or a process that cannot start.
    pub fn start_group(&mut self, gid: u64, kind: Kind) -> Result<()> {
        if !(1..=9).contains(&gid) {
            bail!("group ids go from 1 to 9 (got {gid})");
        }
        let offset = 100 * gid as u16;
        let ports: Vec<u16> = (1..=REPLICAS)
            .map(|r| self.base_port + offset + r)
            .collect();
        let peers = peer_list(&ports);
        let ctrler = self.ctrler_addresses().join(",");
        let mut replicas = Vec::new();
        let mut all_args = Vec::new();
        for (r, port) in (1..=REPLICAS).zip(&ports) {
            let name = format!("group-{gid}-{r}");
            let grpc = format!("127.0.0.1:{port}");
            let http = format!("127.0.0.1:{}", port + 1000);
            let data = self.dir.path().join(&name);
            let mut args = server_args(r, &grpc, &http, &peers, &data);
            match kind {
                Kind::ShardKv => args.extend([
                    "--gid".into(),
                    gid.to_string(),
                    "--ctrler".into(),
                    ctrler.clone(),
                ]),
                Kind::RaftNode => args.extend(["--group".into(), gid.to_string()]),
            }
            replicas.push(self.spawn(kind.binary(), name, grpc, http, &args)?);
            all_args.push(args);
        }
        self.groups.insert(
            gid,
            Group {
                gid,
                kind,
                replicas,
                args: all_args,
            },
        );
        Ok(())
    }

    /// Starts `binary` with `args`, stdout discarded and stderr to its log.
    fn spawn(
        &self,
        binary: &str,
        name: String,
        grpc: String,
        http: String,
        args: &[String],
    ) -> Result<Process> {
        let log = self.dir.path().join("logs").join(format!("{name}.log"));
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .context("log file")?;
        let mut command = Command::new(self.bin_dir.join(binary));
        // The servers read KV_* variables as flags: the caller's own must
        // not change the cluster.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("KV_") {
                command.env_remove(&key);
            }
        }
        let child = command
            .args(args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("cannot start {binary}"))?;
        Ok(Process {
            name,
            child,
            grpc,
            http,
            log,
        })
    }

    /// Kills replica `index` (0-based) of group `gid` with SIGKILL, as a
    /// crash would (what it had not synced is lost), and waits until it
    /// has exited. Its data dir and ports stay for
    /// [`Cluster::restart_replica`]; until then, waits fail on it as on
    /// any process that exited.
    ///
    /// # Errors
    ///
    /// The signal or the wait failing.
    ///
    /// # Panics
    ///
    /// If the group or the replica was not started.
    pub fn kill_replica(&mut self, gid: u64, index: usize) -> Result<()> {
        let process = &mut self.groups.get_mut(&gid).expect("group started").replicas[index];
        process
            .child
            .kill()
            .with_context(|| format!("killing {}", process.name))?;
        process
            .child
            .wait()
            .with_context(|| format!("waiting for {} to exit", process.name))?;
        Ok(())
    }

    /// Starts replica `index` (0-based) of group `gid` again, killed
    /// before, with the same flags: same data dir, same ports.
    ///
    /// # Errors
    ///
    /// The replica still running, or its process not starting.
    ///
    /// # Panics
    ///
    /// If the group or the replica was not started.
    pub fn restart_replica(&mut self, gid: u64, index: usize) -> Result<()> {
        let group = self.groups.get_mut(&gid).expect("group started");
        let (binary, args) = (group.kind.binary(), group.args[index].clone());
        let process = &mut group.replicas[index];
        if process
            .child
            .try_wait()
            .context("process status")?
            .is_none()
        {
            bail!("{} still runs: kill it first", process.name);
        }
        let (name, grpc, http) = (
            process.name.clone(),
            process.grpc.clone(),
            process.http.clone(),
        );
        let restarted = self.spawn(binary, name, grpc, http, &args)?;
        self.groups.get_mut(&gid).expect("group started").replicas[index] = restarted;
        Ok(())
    }

    /// Waits until every replica of group `gid` knows a leader.
    ///
    /// # Errors
    ///
    /// A process exiting, or not ready within 60 s.
    pub async fn wait_group_ready(&mut self, gid: u64) -> Result<()> {
        let https: Vec<String> = self
            .group(gid)
            .replicas
            .iter()
            .map(|p| p.http.clone())
            .collect();
        self.wait_until(
            &format!("group {gid} to elect a leader"),
            READY_TIMEOUT,
            |_| https.iter().all(|http| probe::ready(http)),
        )
        .await
    }

    /// Returns a controller client with a 30 s deadline per call.
    fn ctrler_client(&self) -> Result<CtrlerClient> {
        let options = CallOptions {
            deadline: Duration::from_secs(30),
            ..CallOptions::default()
        };
        Ok(CtrlerClient::new(&self.ctrler_addresses(), options)?)
    }

    /// Joins group `gid` (started) to the controller.
    ///
    /// # Errors
    ///
    /// The controller refusing it or not answering in 30 s.
    pub async fn join(&self, gid: u64) -> Result<()> {
        let servers = self.group(gid).servers();
        let mut ctrler = self.ctrler_client()?;
        ctrler
            .join(BTreeMap::from([(gid, servers)]))
            .await
            .with_context(|| format!("joining group {gid}"))?;
        Ok(())
    }

    /// Removes group `gid` from the configuration.
    ///
    /// # Errors
    ///
    /// As [`Cluster::join`].
    pub async fn leave(&self, gid: u64) -> Result<()> {
        let mut ctrler = self.ctrler_client()?;
        ctrler
            .leave(vec![gid])
            .await
            .with_context(|| format!("group {gid} leaving"))?;
        Ok(())
    }

    /// Fails if any process has exited, with the end of its log.
    ///
    /// # Errors
    ///
    /// The first process found exited.
    pub fn check_running(&mut self) -> Result<()> {
        for process in self
            .ctrlers
            .iter_mut()
            .chain(self.groups.values_mut().flat_map(|g| g.replicas.iter_mut()))
        {
            process.check_running()?;
        }
        Ok(())
    }

    /// Polls `condition` (every 50 ms unless set otherwise) until it holds; fails after `timeout`
    /// or as soon as a process exits. `what` names the wait in the error.
    ///
    /// # Errors
    ///
    /// A process exiting or the timeout passing.
    pub async fn wait_until(
        &mut self,
        what: &str,
        timeout: Duration,
        mut condition: impl FnMut(&Cluster) -> bool,
    ) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            self.check_running()?;
            if condition(self) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "timed out after {timeout:?} waiting for {what} (logs under {})",
                    self.dir().join("logs").display()
                );
            }
            tokio::time::sleep(self.poll).await;
        }
    }

    /// Returns whether every replica of `shardkv` group `gid` holds
    /// `shards` shards in state `serving`.
    pub fn group_serves_all(&self, gid: u64, shards: u32) -> bool {
        self.group(gid)
            .metric("shardkv_shards", &[("state", "serving")])
            .iter()
            .all(|count| *count == Some(f64::from(shards)))
    }
}

/// Returns `1=127.0.0.1:P1,2=...` for replicas on `ports`.
fn peer_list(ports: &[u16]) -> String {
    ports
        .iter()
        .enumerate()
        .map(|(i, port)| format!("{}=127.0.0.1:{port}", i + 1))
        .collect::<Vec<_>>()
        .join(",")
}

/// Returns the shared server flags (`raft::server_flags`) of replica `id`
/// serving gRPC on `grpc` and HTTP on `http`, with its group's `peers` and
/// its data dir.
fn server_args(
    id: u16,
    grpc: &str,
    http: &str,
    peers: &str,
    data: &std::path::Path,
) -> Vec<String> {
    vec![
        "--id".into(),
        id.to_string(),
        "--listen".into(),
        grpc.into(),
        "--http".into(),
        http.into(),
        "--peers".into(),
        peers.into(),
        "--data-dir".into(),
        data.display().to_string(),
    ]
}
