//! The new owner's side of shard moves (DESIGN.md "Reconfiguration in a
//! group"): on the group's leader, for each step the shard table waits on
//! ([`crate::follower::move_tasks`]), fetch the shard's chunks from its
//! holder and install each through the log, then at once ask the holder to
//! delete its copy and record that through the log, while other shards are
//! still pulled.
//!
//! Invariants:
//! - Memory is bounded whatever the shards' sizes: at most
//!   [`PULLS_AT_ONCE`] shards are moved at a time, each with at most two
//!   chunks in memory (the one being installed, the next being fetched).
//! - The log is the only record of progress: a fetch resumes at the
//!   install position the log holds, so a leader change on either side, or
//!   a lost answer, resumes the move without repeating an install (a
//!   repeated chunk changes nothing anyway). A chunk fetched while the one
//!   before it is being installed is proposed only once that install took;
//!   the machine would refuse it out of order anyway.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use proto::config::{ConfigNum, GroupId, ShardId};
use proto::kv::v1::Status as KvStatus;
use proto::shardkv::v1::shard_transfer_client::ShardTransferClient;
use proto::shardkv::v1::{DeleteShardRequest, FetchChunkRequest};
use raft::driver::RaftHandle;
use tonic::transport::Channel;

use crate::codec::chunk_from_proto;
use crate::config_watch::ControllerQueries;
use crate::follower::{MoveTask, move_tasks};
use crate::machine::{Applied, GroupCommand};
use crate::metrics;
use crate::store_rocks::GroupReader;

/// How many bytes of records a fetched chunk holds at most.
const FETCH_BYTES: u64 = 1 << 20;
/// How many shards one round pulls at a time. With direct writes for
/// RocksDB's flushes a move waits on the log's fsyncs more than on the CPU:
/// eight pulls (at most 16 MiB of chunks in memory) moved 1 GiB at a
/// median 85 MiB/s against 77 with four (docs/shardkv.md, "Moving shards"
/// under "The server").
pub const PULLS_AT_ONCE: usize = 8;
/// How long one call to another group may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// The leader's state across rounds of moves: when each pull was first
/// seen (for the duration histogram) and the connections to other groups'
/// servers.
#[derive(Default)]
pub struct Mover {
    clock: BTreeMap<(ShardId, ConfigNum), Instant>,
    holders: HolderClients,
}

impl Mover {
    /// Drives the pending moves of the group once (called by the leader's
    /// loop): up to [`PULLS_AT_ONCE`] shards at a time are pulled, each
    /// then cleaned at once (its holder asked to delete its copy, which is
    /// recorded), and shards installed earlier are cleaned alongside. The
    /// next configuration waits for every shard to be cleaned, so a clean
    /// left to the end of the round would hold it back. Each step that
    /// cannot go on now waits for the next round.
    pub async fn drive(
        &mut self,
        gid: GroupId,
        handle: &RaftHandle<Option<Applied>>,
        reader: &GroupReader,
        controller: &mut ControllerQueries,
    ) {
        let table = match reader.table() {
            Ok(table) => table,
            Err(error) => {
                tracing::warn!(%error, "cannot read the shard table to move shards");
                return;
            }
        };
        let mut moves = tokio::task::JoinSet::new();
        let mut pulling = false;
        for task in move_tasks(&table) {
            let (shard, from, num, installed_before) = match task {
                MoveTask::Pull { shard, from, num } => (shard, from, num, false),
                MoveTask::Clean { shard, from, num } => (shard, from, num, true),
            };
            let Some(servers) = servers_of(from, num, &table, controller).await else {
                tracing::warn!(group = from.0, "no address known for the holder of a shard");
                continue;
            };
            if !installed_before {
                pulling = true;
                self.clock.entry((shard, num)).or_insert_with(Instant::now);
            }
            let (handle, reader) = (handle.clone(), reader.clone());
            let mut holders = self.holders.clone();
            moves.spawn(async move {
                let installed = installed_before
                    || pull(gid, &handle, &reader, &mut holders, &servers, shard, num).await;
                let cleaned =
                    installed && clean(gid, &handle, &mut holders, &servers, shard, num).await;
                Moved {
                    shard,
                    num,
                    pulled: !installed_before && installed,
                    cleaned,
                    holders,
                }
            });
            while moves.len() >= PULLS_AT_ONCE {
                self.finish_move(moves.join_next().await);
            }
        }
        if !pulling {
            ::metrics::gauge!(metrics::SHARDKV_MIGRATION_MOVED_BYTES).set(0.0);
        }
        while !moves.is_empty() {
            self.finish_move(moves.join_next().await);
        }
    }

    /// Records the end of one move task: the pull's duration if it
    /// installed the shard, and the connections it opened.
    fn finish_move(&mut self, joined: Option<Result<Moved, tokio::task::JoinError>>) {
        let Some(Ok(moved)) = joined else {
            return;
        };
        self.holders.merge(moved.holders);
        let (shard, num) = (moved.shard.0, moved.num.0);
        if moved.pulled
            && let Some(started) = self.clock.remove(&(moved.shard, moved.num))
        {
            ::metrics::histogram!(metrics::SHARDKV_MIGRATION_DURATION_SECONDS)
                .record(started.elapsed().as_secs_f64());
        }
        if !moved.cleaned {
            tracing::debug!(shard, num, "a shard's move waits for the next round");
        }
    }
}

/// What one move task did.
struct Moved {
    shard: ShardId,
    num: ConfigNum,
    /// Whether this task pulled the shard to the end.
    pulled: bool,
    /// Whether the holder deleted its copy and the cleanup was recorded.
    cleaned: bool,
    /// The connections the task used.
    holders: HolderClients,
}

/// Connections to other groups' servers, kept between calls (one that
/// fails is dropped), and the server that answered last, asked first.
#[derive(Clone, Default)]
struct HolderClients {
    clients: BTreeMap<String, ShardTransferClient<Channel>>,
    preferred: Option<String>,
}

impl HolderClients {
    /// Returns `servers` in the order to ask them: the one that answered
    /// last first.
    fn order<'a>(&self, servers: &'a [String]) -> Vec<&'a String> {
        let mut ordered: Vec<&String> = servers.iter().collect();
        if let Some(preferred) = &self.preferred
            && let Some(at) = ordered.iter().position(|server| *server == preferred)
        {
            ordered[..=at].rotate_right(1);
        }
        ordered
    }

    /// Returns a connection to `server`, opening one if needed.
    async fn client(&mut self, server: &str) -> Option<ShardTransferClient<Channel>> {
        if let Some(client) = self.clients.get(server) {
            return Some(client.clone());
        }
        let client = connect(server).await?;
        self.clients.insert(server.to_string(), client.clone());
        Some(client)
    }

    /// Forgets the connection to `server` after a failed call.
    fn failed(&mut self, server: &str) {
        self.clients.remove(server);
    }

    /// Takes the connections and the preference another task's copy
    /// learned.
    fn merge(&mut self, other: HolderClients) {
        self.clients.extend(other.clients);
        if other.preferred.is_some() {
            self.preferred = other.preferred;
        }
    }
}

/// Returns the servers of group `gid`: from the current configuration, or
/// the latest earlier one that has it (a group that left).
async fn servers_of(
    gid: GroupId,
    num: ConfigNum,
    table: &crate::shards::ShardTable,
    controller: &mut ControllerQueries,
) -> Option<Vec<String>> {
    if let Some(servers) = table.config().groups.get(&gid) {
        return Some(servers.clone());
    }
    for earlier in (1..num.0).rev() {
        let config = controller.query(i64::try_from(earlier).ok()?).await?;
        if let Some(servers) = config.groups.get(&gid) {
            return Some(servers.clone());
        }
    }
    None
}

/// Connects to one server.
async fn connect(server: &str) -> Option<ShardTransferClient<Channel>> {
    let endpoint = Channel::from_shared(format!("http://{server}"))
        .ok()?
        .connect_timeout(CALL_TIMEOUT)
        .timeout(CALL_TIMEOUT);
    Some(ShardTransferClient::new(endpoint.connect().await.ok()?))
}

/// Fetches and installs `shard` chunk by chunk from where the log stands,
/// fetching each chunk while the one before it is installed; returns
/// whether the shard is installed.
async fn pull(
    gid: GroupId,
    handle: &RaftHandle<Option<Applied>>,
    reader: &GroupReader,
    holders: &mut HolderClients,
    servers: &[String],
    shard: ShardId,
    num: ConfigNum,
) -> bool {
    let Ok((_, installing)) = reader.table_and_installing() else {
        return false;
    };
    let Some(cursor) = installing
        .get(&shard)
        .map(|position| position.cursor.clone())
    else {
        // Installed (or no longer pulled): nothing to fetch.
        return true;
    };
    let Some(mut chunk) = fetch(gid, holders, servers, shard, num, cursor).await else {
        return false;
    };
    loop {
        let (last, next_cursor) = (chunk.last, chunk.next_cursor.clone());
        let install = install(handle, chunk);
        if last {
            return install.await && installed(reader, shard);
        }
        let (took, next) = tokio::join!(
            install,
            fetch(gid, holders, servers, shard, num, next_cursor)
        );
        match (took, next) {
            (true, Some(next)) => chunk = next,
            // The log holds the position to resume from next round.
            _ => return false,
        }
    }
}

/// Proposes the install of `chunk`; returns whether it took.
async fn install(handle: &RaftHandle<Option<Applied>>, chunk: crate::machine::ShardChunk) -> bool {
    let bytes = chunk.record_bytes();
    let command = GroupCommand::Install(chunk);
    match handle.propose(Bytes::from(command.encode())).await {
        Ok((_, Some(Applied::Install(true)))) => {
            ::metrics::counter!(metrics::SHARDKV_MIGRATION_BYTES_TOTAL).increment(bytes);
            ::metrics::gauge!(metrics::SHARDKV_MIGRATION_MOVED_BYTES).increment(bytes as f64);
            true
        }
        _ => false,
    }
}

/// Returns whether the replica's table no longer waits on `shard`'s data.
fn installed(reader: &GroupReader, shard: ShardId) -> bool {
    reader
        .table_and_installing()
        .is_ok_and(|(_, installing)| !installing.contains_key(&shard))
}

/// Asks the holder's servers for the chunk at `cursor`.
async fn fetch(
    gid: GroupId,
    holders: &mut HolderClients,
    servers: &[String],
    shard: ShardId,
    num: ConfigNum,
    cursor: Bytes,
) -> Option<crate::machine::ShardChunk> {
    for server in holders.order(servers) {
        let Some(mut client) = holders.client(server).await else {
            continue;
        };
        let request = FetchChunkRequest {
            to_gid: gid.0,
            shard: shard.0,
            config_num: num.0,
            cursor: cursor.clone(),
            bytes_max: FETCH_BYTES,
        };
        let reply = match client.fetch_chunk(request).await {
            Ok(reply) => reply.into_inner(),
            Err(_) => {
                holders.failed(server);
                continue;
            }
        };
        if reply.status == KvStatus::Ok as i32 {
            holders.preferred = Some(server.clone());
            return reply.chunk.map(chunk_from_proto);
        }
    }
    None
}

/// Asks the holder to delete its copy, then records the cleanup; returns
/// whether the move is finished.
async fn clean(
    gid: GroupId,
    handle: &RaftHandle<Option<Applied>>,
    holders: &mut HolderClients,
    servers: &[String],
    shard: ShardId,
    num: ConfigNum,
) -> bool {
    let mut deleted = false;
    for server in holders.order(servers) {
        let Some(mut client) = holders.client(server).await else {
            continue;
        };
        let request = DeleteShardRequest {
            to_gid: gid.0,
            shard: shard.0,
            config_num: num.0,
        };
        match client.delete_shard(request).await {
            Ok(reply) if reply.get_ref().status == KvStatus::Ok as i32 => {
                holders.preferred = Some(server.clone());
                deleted = true;
                break;
            }
            Ok(_) => {}
            Err(_) => holders.failed(server),
        }
    }
    if !deleted {
        return false;
    }
    let command = GroupCommand::Cleaned { shard, num };
    matches!(
        handle.propose(Bytes::from(command.encode())).await,
        Ok((_, Some(Applied::Cleaned(_))))
    )
}
