//! The new owner's side of shard moves (DESIGN.md "Reconfiguration in a
//! group"): on the group's leader, for each step the shard table waits on
//! ([`crate::follower::move_tasks`]), fetch the shard's chunks from its
//! holder and install each through the log, then ask the holder to delete
//! its copy and record that through the log.
//!
//! Invariants:
//! - One chunk is in memory at a time, whatever the shard's size.
//! - The log is the only record of progress: a fetch resumes at the
//!   install position the log holds, so a leader change on either side, or
//!   a lost answer, resumes the move without repeating an install (a
//!   repeated chunk changes nothing anyway).

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
/// How long one call to another group may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// When this leader first saw each pull it drives, for the duration
/// histogram.
pub type PullClock = BTreeMap<(ShardId, ConfigNum), Instant>;

/// Drives the pending moves of the group once (called by the leader's
/// loop); each step that cannot go on now waits for the next round.
pub async fn drive_moves(
    gid: GroupId,
    handle: &RaftHandle<Option<Applied>>,
    reader: &GroupReader,
    controller: &mut ControllerQueries,
    clock: &mut PullClock,
) {
    let (table, _) = match reader.table_and_installing() {
        Ok(state) => state,
        Err(error) => {
            tracing::warn!(%error, "cannot read the shard table to move shards");
            return;
        }
    };
    let tasks = move_tasks(&table);
    if !tasks
        .iter()
        .any(|task| matches!(task, MoveTask::Pull { .. }))
    {
        ::metrics::gauge!(metrics::SHARDKV_MIGRATION_MOVED_BYTES).set(0.0);
    }
    for task in tasks {
        let (from, num) = match task {
            MoveTask::Pull { from, num, .. } | MoveTask::Clean { from, num, .. } => (from, num),
        };
        let Some(servers) = servers_of(from, num, &table, controller).await else {
            tracing::warn!(group = from.0, "no address known for the holder of a shard");
            continue;
        };
        let done = match task {
            MoveTask::Pull { shard, .. } => {
                let started = *clock.entry((shard, num)).or_insert_with(Instant::now);
                let installed = pull(gid, handle, reader, &servers, shard, num).await;
                if installed {
                    clock.remove(&(shard, num));
                    ::metrics::histogram!(metrics::SHARDKV_MIGRATION_DURATION_SECONDS)
                        .record(started.elapsed().as_secs_f64());
                }
                installed
            }
            MoveTask::Clean { shard, .. } => clean(gid, handle, &servers, shard, num).await,
        };
        if !done {
            tracing::debug!(?task, "a shard move waits");
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

/// Fetches and installs `shard` chunk by chunk from where the log stands;
/// returns whether it is installed.
async fn pull(
    gid: GroupId,
    handle: &RaftHandle<Option<Applied>>,
    reader: &GroupReader,
    servers: &[String],
    shard: ShardId,
    num: ConfigNum,
) -> bool {
    loop {
        let Ok((_, installing)) = reader.table_and_installing() else {
            return false;
        };
        let Some(cursor) = installing.get(&shard).cloned() else {
            // Installed (or no longer pulled): nothing to fetch.
            return true;
        };
        let Some(chunk) = fetch(gid, servers, shard, num, cursor).await else {
            return false;
        };
        let bytes: usize = chunk
            .records
            .iter()
            .map(|(key, value)| key.len() + value.len())
            .sum();
        let command = GroupCommand::Install(chunk);
        match handle.propose(Bytes::from(command.encode())).await {
            Ok((_, Some(Applied::Install(true)))) => {
                ::metrics::counter!(metrics::SHARDKV_MIGRATION_BYTES_TOTAL).increment(bytes as u64);
                ::metrics::gauge!(metrics::SHARDKV_MIGRATION_MOVED_BYTES).increment(bytes as f64);
            }
            Ok((_, Some(Applied::Install(false)))) => {}
            _ => return false,
        }
    }
}

/// Asks the holder's servers for the chunk at `cursor`.
async fn fetch(
    gid: GroupId,
    servers: &[String],
    shard: ShardId,
    num: ConfigNum,
    cursor: Bytes,
) -> Option<crate::machine::ShardChunk> {
    for server in servers {
        let Some(mut client) = connect(server).await else {
            continue;
        };
        let request = FetchChunkRequest {
            to_gid: gid.0,
            shard: shard.0,
            config_num: num.0,
            cursor: cursor.clone(),
            bytes_max: FETCH_BYTES,
        };
        let Ok(reply) = client.fetch_chunk(request).await else {
            continue;
        };
        let reply = reply.into_inner();
        if reply.status == KvStatus::Ok as i32 {
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
    servers: &[String],
    shard: ShardId,
    num: ConfigNum,
) -> bool {
    let mut deleted = false;
    for server in servers {
        let Some(mut client) = connect(server).await else {
            continue;
        };
        let request = DeleteShardRequest {
            to_gid: gid.0,
            shard: shard.0,
            config_num: num.0,
        };
        if let Ok(reply) = client.delete_shard(request).await
            && reply.get_ref().status == KvStatus::Ok as i32
        {
            deleted = true;
            break;
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
