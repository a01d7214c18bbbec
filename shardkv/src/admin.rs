//! The internal `shardkv.v1.GroupAdmin` service: what one group replica
//! reports about itself (role, term, leader, indexes, configuration and
//! shard states), for `kvctl status`. It reads local state only: every
//! replica answers, leader or not.

use std::collections::BTreeMap;

use proto::config::GroupId;
use proto::shardkv::v1::group_admin_server::{GroupAdmin, GroupAdminServer};
use proto::shardkv::v1::{GroupStatusReply, GroupStatusRequest};
use raft::core::{NodeId, Role};
use raft::driver::RaftHandle;
use tonic::{Request, Response, Status};

use crate::machine::Applied;
use crate::store_rocks::{GroupReader, state_record};

/// The admin service over the local replica.
pub struct AdminService {
    gid: GroupId,
    handle: RaftHandle<Option<Applied>>,
    reader: GroupReader,
    peers: BTreeMap<NodeId, String>,
}

impl AdminService {
    /// Returns the service of group `gid`'s replica behind `handle`.
    pub fn new(
        gid: GroupId,
        handle: RaftHandle<Option<Applied>>,
        reader: GroupReader,
        peers: BTreeMap<NodeId, String>,
    ) -> AdminService {
        AdminService {
            gid,
            handle,
            reader,
            peers,
        }
    }

    /// Returns the gRPC server of this service.
    pub fn into_server(self) -> GroupAdminServer<AdminService> {
        GroupAdminServer::new(self)
    }
}

/// Returns the name of a role in status output.
fn role_name(role: Role) -> &'static str {
    match role {
        Role::Leader => "leader",
        Role::Follower => "follower",
        Role::Candidate => "candidate",
        Role::PreCandidate => "pre_candidate",
    }
}

#[tonic::async_trait]
impl GroupAdmin for AdminService {
    async fn status(
        &self,
        _request: Request<GroupStatusRequest>,
    ) -> Result<Response<GroupStatusReply>, Status> {
        let status = self.handle.status();
        let (table, installing) = self
            .reader
            .table_and_installing()
            .map_err(|error| Status::unavailable(error.to_string()))?;
        let leader = status
            .leader
            .and_then(|id| self.peers.get(&id).cloned())
            .unwrap_or_default();
        Ok(Response::new(GroupStatusReply {
            gid: self.gid.0,
            node: status.id.0,
            role: role_name(status.role).to_string(),
            term: status.term.0,
            leader,
            commit: status.commit.0,
            applied: status.applied.0,
            config_num: table.config().num.0,
            shards: table
                .states()
                .map(|(shard, state)| state_record(shard, state))
                .collect(),
            restoring: status.restoring,
            installed_bytes: installing
                .iter()
                .map(|(shard, position)| (shard.0, position.bytes))
                .collect(),
        }))
    }
}
