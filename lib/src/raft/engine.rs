//! What the group manager needs from a storage engine and a transport. The
//! engines live in other crates (`chronik-storage`, `chronik-network`); this
//! keeps the core free of sled and HTTP, and lets tests plug in others.

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use openraft::storage::{RaftLogStorage, RaftStateMachine};
use openraft::network::NetSnapshot;
use openraft::RaftNetworkFactory;
use tokio::sync::watch;

use crate::raft::liveness::NodeStatus;
use crate::cluster::metadata::{ClusterMetadata, ControllerCommand, ControllerError};
use crate::offsets::{CommittedOffset, GroupRecord};
use crate::log::compaction::CompactionView;
use crate::store::{BatchLocation, StoreError};
use crate::{GroupId, NodeAddr, NodeId, Offset, TypeConfig};

/// Read access to one partition's applied data.
pub trait PartitionLog: Send + Sync + 'static {
    fn high_watermark(&self) -> Offset;
    fn log_start_offset(&self) -> Offset;
    fn subscribe(&self) -> watch::Receiver<Offset>;
    /// See [`crate::PartitionStore::read`]; only batches below the high watermark.
    fn read(&self, offset: Offset, max_bytes: usize) -> Result<Vec<Bytes>, StoreError>;
    fn batch_at_timestamp(&self, timestamp: i64) -> Result<Option<Bytes>, StoreError>;
    /// The newest timestamp of any batch (None: no batch).
    fn newest_timestamp(&self) -> Result<Option<i64>, StoreError>;
    /// The idempotent producers the partition remembers, by producer id.
    fn producers(&self) -> Result<Vec<(i64, crate::log::producers::ProducerState)>, StoreError>;
    /// Bytes of the batches from the log start to the high watermark.
    fn retained_bytes(&self) -> u64;
    /// The log start offset `rule` allows at `now_ms` (see
    /// [`crate::log::retention::trim_point`]), or None if nothing may go.
    fn trim_point(&self, rule: &crate::log::retention::Retention, now_ms: i64) -> Result<Option<Offset>, StoreError>;
    /// How this replica closes the segments of its Raft log (per topic;
    /// see [`crate::log::retention::SegmentRule`]).
    fn set_segment_rule(&self, rule: crate::log::retention::SegmentRule);
    /// A checkpoint newer than the current snapshot lies wholly below the
    /// log start: a snapshot built now lets the Raft log up to it go.
    fn snapshot_due(&self) -> bool;
    /// What compacting this partition would take, with batches newer than
    /// `newest_cleanable_ms` left alone (min.compaction.lag.ms).
    fn compaction_view(&self, newest_cleanable_ms: i64) -> Result<CompactionView, StoreError>;
    /// Up to `limit` batches below the high watermark, from the one holding `from` on.
    fn batch_locations(&self, from: Offset, limit: usize) -> Result<Vec<BatchLocation>, StoreError>;

    /// The leader epoch at or below `epoch` that this partition has written
    /// in, and the offset after its last batch (OffsetForLeaderEpoch). None
    /// when no batch of such an epoch exists.
    fn epoch_end_offset(&self, epoch: i32) -> Option<(i32, Offset)>;

    /// Offsets partitions: a consumer group's committed offsets.
    fn committed_offsets(&self, group: &str) -> Result<Vec<(String, i32, CommittedOffset)>, StoreError>;

    /// Offsets partitions: a consumer group's last completed generation.
    fn group_record(&self, group: &str) -> Result<Option<GroupRecord>, StoreError>;

    /// Offsets partitions: when a group's record was last stored (an Empty
    /// group's offsets expire from then), if known.
    fn group_stored_at(&self, group: &str) -> Result<Option<i64>, StoreError>;

    /// The oldest last-batch timestamp of the idempotent producers kept.
    fn oldest_producer_timestamp(&self) -> Result<Option<i64>, StoreError>;

    /// Offsets partitions: the topics any group has committed offsets of.
    fn committed_topics(&self) -> Result<std::collections::BTreeSet<String>, StoreError>;

    /// Offsets partitions: every group with a record or committed offsets.
    fn group_names(&self) -> Result<Vec<String>, StoreError>;

    /// Registers an acks=1 produce: propose it with the returned token, and
    /// `offset` yields its base offset once the batch is durable in this
    /// node's log (the offset it will have if committed). The sender is
    /// dropped if the log store cannot tell (the caller then waits for commit).
    fn local_append(&self) -> LocalAppend;
}

/// See [`PartitionLog::local_append`]. Dropping it withdraws the registration.
pub struct LocalAppend {
    pub token: u64,
    pub offset: tokio::sync::oneshot::Receiver<Offset>,
    pub cancel: Option<Box<dyn FnOnce() + Send + Sync>>,
}

impl Drop for LocalAppend {
    fn drop(&mut self) {
        if let Some(cancel) = self.cancel.take() {
            cancel();
        }
    }
}

pub struct OpenedGroup<E: StorageEngine> {
    pub log: E::Log,
    pub sm: E::Sm,
}

pub trait StorageEngine: Send + Sync + 'static {
    type Log: RaftLogStorage<TypeConfig>;
    type Sm: RaftStateMachine<TypeConfig, SnapshotData = crate::SnapshotData>;

    /// The controller group, and a watch on its applied metadata.
    fn open_controller(&self) -> Result<(OpenedGroup<Self>, watch::Receiver<Arc<ClusterMetadata>>), StoreError>
    where Self: Sized;

    /// A partition group, and read access to its data.
    fn open_partition(&self, group: GroupId) -> Result<(OpenedGroup<Self>, Arc<dyn PartitionLog>), StoreError>
    where Self: Sized;

    /// Partition groups that have state on this node.
    fn local_groups(&self) -> Result<Vec<GroupId>, StoreError>;

    /// Removes every trace of a group (after it was deleted or moved away).
    fn drop_group(&self, group: GroupId) -> Result<(), StoreError>;

    /// Bytes still free where the data lives (None: cannot tell).
    fn disk_free_bytes(&self) -> Option<u64>;
}

/// Hands out one network factory per group; all of them share the
/// transport's per-peer connections.
pub trait Transport: Send + Sync + 'static {
    type Factory: RaftNetworkFactory<TypeConfig, Network: NetSnapshot<TypeConfig, SnapshotData = crate::SnapshotData>>;
    fn factory(&self, group: GroupId) -> Self::Factory;

    /// Exchanges node status with a peer (liveness and leader gossip).
    fn ping(&self, peer: NodeId, addr: &NodeAddr, status: NodeStatus) -> impl Future<Output = Result<NodeStatus, String>> + Send;

    /// Asks `peer`, which leads `group`, to hand its leadership to `to`.
    fn move_leader(&self, peer: NodeId, addr: &NodeAddr, group: GroupId, to: NodeId) -> impl Future<Output = Result<(), String>> + Send;

    /// Asks `peer` (the controller leader, as far as we know) to write a
    /// metadata change. The outer error is the transport's or "not controller".
    fn forward_controller(
        &self,
        peer: NodeId,
        addr: &NodeAddr,
        cmd: ControllerCommand,
    ) -> impl Future<Output = Result<Result<(), ControllerError>, String>> + Send;

    /// Asks the node at Raft address `addr` (any node of a running cluster)
    /// to register `node`, reached at `node_addr`, in `rack`, in the cluster.
    fn join(&self, addr: &str, node: NodeId, node_addr: NodeAddr, rack: Option<String>) -> impl Future<Output = Result<Result<(), ControllerError>, String>> + Send;
}

/// Raft RPCs as they arrive from peers, addressed to a group on this node.
/// Errors are strings: they cross the wire as such.
pub trait RaftRpcHandler: Send + Sync + 'static {
    /// The node this handler answers for.
    fn node_id(&self) -> NodeId;

    /// A peer's status arrived; answer with ours.
    fn ping(&self, status: NodeStatus) -> NodeStatus;

    /// A peer asks this node, which leads `group`, to hand it to `to`.
    fn move_leader(&self, group: GroupId, to: NodeId) -> impl Future<Output = Result<(), String>> + Send;

    /// A metadata change forwarded by a peer to this (controller leader) node.
    fn controller_write(&self, cmd: ControllerCommand) -> impl Future<Output = Result<Result<(), ControllerError>, String>> + Send;

    /// A node asks to join the cluster (see `crate::raft::membership`).
    fn join(&self, node: NodeId, addr: NodeAddr, rack: Option<String>) -> impl Future<Output = Result<(), ControllerError>> + Send;

    fn append_entries(
        &self,
        group: GroupId,
        req: openraft::raft::AppendEntriesRequest<TypeConfig>,
    ) -> impl std::future::Future<Output = Result<openraft::raft::AppendEntriesResponse<TypeConfig>, String>> + Send;

    fn vote(
        &self,
        group: GroupId,
        req: openraft::raft::VoteRequest<TypeConfig>,
        pre_vote: bool,
    ) -> impl std::future::Future<Output = Result<openraft::raft::VoteResponse<TypeConfig>, String>> + Send;

    /// The group's leader hands leadership over (see `Trigger::transfer_leader`).
    fn transfer_leader(
        &self,
        group: GroupId,
        req: openraft::raft::TransferLeaderRequest<TypeConfig>,
    ) -> impl std::future::Future<Output = Result<openraft::raft::TransferLeaderResponse<TypeConfig>, String>> + Send;

    fn install_snapshot(
        &self,
        group: GroupId,
        vote: openraft::alias::VoteOf<TypeConfig>,
        meta: crate::SnapshotMeta,
        data: Vec<u8>,
    ) -> impl std::future::Future<Output = Result<openraft::raft::SnapshotResponse<TypeConfig>, String>> + Send;
}
