//! A 3-member etcd cluster on loopback, each member a child process with
//! its data directory and log in one temporary directory: the reference
//! `compare-etcd` measures our store against. Dropping the [`Etcd`] kills
//! every member (SIGKILL) and removes the directory.
//!
//! Ports, from `base_port`: member `i` (1-3) serves clients (gRPC, and
//! `/metrics`) on `base + i` and its peers on `base + 100 + i`. The
//! members keep etcd's defaults (fsync on every commit, 100 ms heartbeats,
//! 1 s election timeout), which are ours too.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::cluster::Process;

/// Members of the cluster.
const MEMBERS: u16 = 3;
/// How long the members may take to elect a leader.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A running etcd cluster, killed and removed when dropped.
pub struct Etcd {
    /// The members, 1 to 3.
    pub members: Vec<Process>,
    /// Data dirs and logs; removed after the members are killed.
    dir: tempfile::TempDir,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        for member in &mut self.members {
            let _ = member.child.kill();
            let _ = member.child.wait();
        }
    }
}

impl Etcd {
    /// Starts three members of `binary` (a path, or `etcd` on the `PATH`)
    /// on ports from `base_port` and waits until they elected a leader.
    ///
    /// # Errors
    ///
    /// The binary missing, a member exiting, or no leader within 60 s.
    pub async fn start(binary: &Path, base_port: u16) -> Result<Etcd> {
        let dir = tempfile::Builder::new()
            .prefix("kv-bench-etcd-")
            .tempdir()
            .context("temporary directory")?;
        let peer_url = |i: u16| format!("http://127.0.0.1:{}", base_port + 100 + i);
        let initial_cluster = (1..=MEMBERS)
            .map(|i| format!("m{i}={}", peer_url(i)))
            .collect::<Vec<_>>()
            .join(",");
        let mut etcd = Etcd {
            members: Vec::new(),
            dir,
        };
        for i in 1..=MEMBERS {
            let name = format!("m{i}");
            let client = format!("127.0.0.1:{}", base_port + i);
            let client_url = format!("http://{client}");
            let log = etcd.dir.path().join(format!("{name}.log"));
            let stderr = std::fs::File::create(&log).context("member log")?;
            let child = Command::new(binary)
                .args(["--name", &name, "--data-dir"])
                .arg(etcd.dir.path().join(&name))
                .args(["--listen-client-urls", &client_url])
                .args(["--advertise-client-urls", &client_url])
                .args(["--listen-peer-urls", &peer_url(i)])
                .args(["--initial-advertise-peer-urls", &peer_url(i)])
                .args(["--initial-cluster", &initial_cluster])
                .args(["--initial-cluster-token", "kv-bench"])
                .args(["--initial-cluster-state", "new"])
                .args(["--logger", "zap", "--log-level", "warn"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(stderr)
                .spawn()
                .with_context(|| {
                    format!(
                        "starting {} (Debian: apt-get install etcd-server)",
                        binary.display()
                    )
                })?;
            etcd.members.push(Process {
                name: format!("etcd-{name}"),
                child,
                grpc: client.clone(),
                http: client,
                log,
            });
        }
        etcd.wait_for_leader().await?;
        Ok(etcd)
    }

    /// The members' client endpoints, `127.0.0.1:PORT`.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(|m| m.grpc.clone()).collect()
    }

    /// The members' process ids.
    pub fn pids(&self) -> Vec<u32> {
        self.members.iter().map(Process::pid).collect()
    }

    /// Returns the client endpoint of the member that leads now.
    ///
    /// # Errors
    ///
    /// No member answers, or none names a leader.
    pub async fn leader_endpoint(&self) -> Result<String> {
        for endpoint in self.endpoints() {
            let Ok(mut client) = etcd_client::Client::connect([&endpoint], None).await else {
                continue;
            };
            let Ok(status) = client.status().await else {
                continue;
            };
            let leader = status.leader();
            let Ok(members) = client.member_list().await else {
                continue;
            };
            let url = members
                .members()
                .iter()
                .find(|member| member.id() == leader)
                .and_then(|member| member.client_urls().first().cloned());
            if let Some(url) = url {
                return Ok(url.trim_start_matches("http://").to_string());
            }
        }
        bail!("no etcd member names a leader")
    }

    /// Polls until a member names a leader; fails after 60 s or as soon
    /// as a member exits.
    async fn wait_for_leader(&mut self) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            for member in &mut self.members {
                member.check_running()?;
            }
            if self.leader_endpoint().await.is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "etcd elected no leader within {READY_TIMEOUT:?} (logs under {})",
                    self.dir.path().display()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
