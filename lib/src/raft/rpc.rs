//! Raft RPCs from peers, handed to the group they are for.

use crate::cluster::metadata::{ControllerCommand, ControllerError};
use crate::raft::engine::{StorageEngine, Transport};
use crate::raft::groups::GroupManager;
use crate::metrics::VoteLabels;
use crate::raft::liveness::NodeStatus;
use crate::store::StoreError;
use crate::{Command, GroupId, NodeAddr, NodeId, Raft, CONTROLLER_GROUP};

impl<E: StorageEngine, T: Transport> GroupManager<E, T> {
    fn raft_of(&self, group: GroupId) -> Result<Raft<E::Sm>, String> {
        if group == CONTROLLER_GROUP {
            return Ok(self.controller.clone());
        }
        self.partition(group)
            .map(|pg| pg.raft.clone())
            .ok_or_else(|| format!("group {group} is not running on node {}", self.node_id()))
    }
}

impl<E: StorageEngine, T: Transport> crate::raft::engine::RaftRpcHandler for GroupManager<E, T> {
    fn node_id(&self) -> NodeId {
        self.cfg.node_id
    }

    fn ping(&self, status: NodeStatus) -> NodeStatus {
        self.peers.record(self.node_id(), &status);
        self.status_for(status.have, self.peers.version_of(status.node))
    }

    async fn move_leader(&self, group: GroupId, to: NodeId) -> Result<(), String> {
        self.move_leader_of(group, to).await
    }

    async fn controller_write(&self, cmd: ControllerCommand) -> Result<Result<(), ControllerError>, String> {
        match self.propose_local(cmd).await {
            Ok(()) => Ok(Ok(())),
            Err(StoreError::Controller(e)) => Ok(Err(e)),
            Err(e) => Err(e.to_string()),
        }
    }

    async fn join(&self, node: NodeId, addr: NodeAddr, rack: Option<String>) -> Result<(), ControllerError> {
        GroupManager::join(self, node, addr, rack).await
    }

    async fn append_entries(
        &self,
        group: GroupId,
        req: openraft::raft::AppendEntriesRequest<crate::TypeConfig>,
    ) -> Result<openraft::raft::AppendEntriesResponse<crate::TypeConfig>, String> {
        // Partition data is refused while the disk is nearly full (the leader
        // backs off and goes on with the other replicas); heartbeats and the
        // small controller entries are not.
        self.metrics.raft_append_entries.get_or_create(&self.metrics.node()).inc();
        if group != CONTROLLER_GROUP && !req.entries.is_empty() {
            let bytes: u64 = req
                .entries
                .iter()
                .map(|e| match &e.payload {
                    openraft::EntryPayload::Normal(Command::Append { batch, .. }) => batch.len() as u64,
                    _ => 256,
                })
                .sum();
            self.check_disk(bytes).map_err(|e| e.to_string())?;
        }
        self.raft_of(group)?.append_entries(req).await.map_err(|e| e.to_string())
    }

    async fn vote(
        &self,
        group: GroupId,
        req: openraft::raft::VoteRequest<crate::TypeConfig>,
        pre_vote: bool,
    ) -> Result<openraft::raft::VoteResponse<crate::TypeConfig>, String> {
        let kind = if pre_vote { "pre_vote" } else { "vote" };
        self.metrics.raft_vote_requests.get_or_create(&VoteLabels { node_id: self.metrics.node_id.clone(), kind }).inc();
        let raft = self.raft_of(group)?;
        if pre_vote { raft.pre_vote(req).await } else { raft.vote(req).await }.map_err(|e| e.to_string())
    }

    async fn transfer_leader(
        &self,
        group: GroupId,
        req: openraft::raft::TransferLeaderRequest<crate::TypeConfig>,
    ) -> Result<openraft::raft::TransferLeaderResponse<crate::TypeConfig>, String> {
        self.raft_of(group)?.handle_transfer_leader(req).await.map_err(|e| e.to_string())
    }

    async fn install_snapshot(
        &self,
        group: GroupId,
        vote: openraft::alias::VoteOf<crate::TypeConfig>,
        meta: crate::SnapshotMeta,
        data: Vec<u8>,
    ) -> Result<openraft::raft::SnapshotResponse<crate::TypeConfig>, String> {
        let snapshot = openraft::alias::SnapshotOf::<crate::TypeConfig, crate::SnapshotData> { meta, snapshot: std::io::Cursor::new(data) };
        self.raft_of(group)?.install_full_snapshot(vote, snapshot).await.map_err(|e| e.to_string())
    }
}
