//! The controller's `Watch` stream, as the configuration follower uses it
//! (DESIGN.md "Reconfiguration in a group"): a task holds one stream from
//! a controller replica and announces the newest configuration number it
//! has seen, so the group's leader learns of a new configuration as soon
//! as it commits instead of at its next periodic query.
//!
//! Invariants:
//! - The announced number only grows. It is a hint: the follower still
//!   reads each configuration it proposes through a `Query` (any replica's
//!   stream may lag), and queries on its own at a fixed interval, so a
//!   stalled or broken stream delays reconfiguration, never stops it.
//! - The task ends with its [`ConfigAnnouncer`] (aborted on drop).

use std::time::Duration;

use proto::kv::v1::WatchRequest;
use proto::kv::v1::shard_ctrler_client::ShardCtrlerClient;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

/// How long connecting to a controller replica and opening a stream may
/// take.
const OPEN_TIMEOUT: Duration = Duration::from_secs(2);
/// The pause after a failed or ended stream, doubled up to
/// [`RETRY_PAUSE_MAX`] while replicas keep failing.
const RETRY_PAUSE_MIN: Duration = Duration::from_millis(50);
/// The longest pause between attempts to open a stream.
const RETRY_PAUSE_MAX: Duration = Duration::from_secs(1);

/// The newest configuration number the controller's stream announced;
/// owns the streaming task.
pub struct ConfigAnnouncer {
    newest: watch::Receiver<u64>,
    task: JoinHandle<()>,
}

impl ConfigAnnouncer {
    /// Starts streaming from the controller replicas `ctrler` (`host:port`
    /// each), announcing configurations after `known` (the newest the
    /// group already has).
    pub fn start(ctrler: Vec<String>, known: u64) -> ConfigAnnouncer {
        let (sender, newest) = watch::channel(known);
        let task = tokio::spawn(stream_configs(ctrler, sender));
        ConfigAnnouncer { newest, task }
    }

    /// Returns the newest configuration number announced so far.
    pub fn newest(&self) -> u64 {
        *self.newest.borrow()
    }

    /// Waits until a newer configuration number is announced. Never
    /// returns if the task has ended (it ends only with `self`).
    pub async fn changed(&mut self) {
        if self.newest.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

impl Drop for ConfigAnnouncer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Holds a stream from one replica at a time, moving to the next when one
/// fails or ends, and raises `newest` with every configuration received.
async fn stream_configs(ctrler: Vec<String>, newest: watch::Sender<u64>) {
    if ctrler.is_empty() {
        return;
    }
    let mut pause = RETRY_PAUSE_MIN;
    for address in ctrler.iter().cycle() {
        let from_num = *newest.borrow() + 1;
        match open(address, from_num).await {
            Some(mut stream) => {
                while let Ok(Some(config)) = stream.message().await {
                    newest.send_if_modified(|num| {
                        let newer = config.num > *num;
                        if newer {
                            *num = config.num;
                        }
                        newer
                    });
                    pause = RETRY_PAUSE_MIN;
                }
                tracing::debug!(%address, "the controller's configuration stream ended");
            }
            None => tracing::debug!(%address, "cannot open the controller's configuration stream"),
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(RETRY_PAUSE_MAX);
    }
}

/// Opens a stream of the configurations from `from_num` on at the replica
/// at `address`, or returns `None` if it does not accept one in time.
async fn open(address: &str, from_num: u64) -> Option<tonic::Streaming<proto::kv::v1::Config>> {
    let endpoint = Channel::from_shared(format!("http://{address}"))
        .ok()?
        .connect_timeout(OPEN_TIMEOUT);
    let opening = async {
        let mut client = ShardCtrlerClient::new(endpoint.connect().await.ok()?);
        client
            .watch(WatchRequest { from_num })
            .await
            .ok()
            .map(tonic::Response::into_inner)
    };
    tokio::time::timeout(OPEN_TIMEOUT, opening).await.ok()?
}
