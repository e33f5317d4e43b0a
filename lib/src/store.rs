//! The partition-store interface: everything the Kafka front door may ask of
//! the node. It speaks topics, partitions and offsets, never Raft or sled.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use tokio::sync::watch;

use crate::cluster::dynamic_config::{ConfigOp, ConfigResource};
use crate::cluster::metadata::ControllerError;
use crate::log::batch::BatchError;
use crate::log::producers::ProducerRefusal;
use crate::offsets::{CommittedOffset, GroupCommand, GroupRecord};
use crate::{NodeId, Offset, TopicPartition};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    /// acks=0: the client wants no answer.
    None,
    /// acks=1: answer once the leader has the batch durably.
    Leader,
    /// acks=all (-1): answer once the batch is committed on a majority.
    All,
}

impl Acks {
    pub fn from_kafka(acks: i16) -> Option<Self> {
        match acks {
            0 => Some(Acks::None),
            1 => Some(Acks::Leader),
            -1 => Some(Acks::All),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("partition {0} does not exist")]
    UnknownTopicOrPartition(TopicPartition),
    #[error("partition {0} is not led by this node; leader is {1:?}")]
    NotLeader(TopicPartition, Option<NodeId>),
    #[error("partition {0} has no leader yet (election or recovery in progress)")]
    LeaderNotAvailable(TopicPartition),
    #[error("offset {offset} of {tp} is out of range [{log_start}, {high_watermark}]")]
    OffsetOutOfRange { tp: TopicPartition, offset: Offset, log_start: Offset, high_watermark: Offset },
    #[error("record batch for {0} is corrupt: {1}")]
    CorruptBatch(TopicPartition, BatchError),
    #[error("record batch for {0} is invalid: {1}")]
    InvalidBatch(TopicPartition, BatchError),
    #[error("write to {0} was not committed before the timeout; its outcome is unknown")]
    Timeout(TopicPartition),
    #[error("this node is not the controller; controller is {0:?}")]
    NotController(Option<NodeId>),
    #[error(transparent)]
    Controller(#[from] ControllerError),
    #[error("invalid config {key}={value:?}: {reason}")]
    InvalidConfig { key: String, value: String, reason: String },
    #[error("storage error on node {node}: {detail}")]
    Storage { node: NodeId, detail: String },
    #[error("node {node} is shutting down")]
    ShuttingDown { node: NodeId },
    #[error("partition {0} refused the batch: {1}")]
    ProducerRefused(TopicPartition, ProducerRefusal),
    #[error("partition {0} is led by its preferred replica already")]
    ElectionNotNeeded(TopicPartition),
    #[error("the preferred leader of {0}, node {1}, is not alive and in sync")]
    PreferredLeaderNotAvailable(TopicPartition, NodeId),
    #[error("node {node} refuses writes: {free_bytes} bytes free on its data disk, below the {reserve_bytes}-byte reserve (min_free_disk_bytes)")]
    DiskFull { node: NodeId, free_bytes: u64, reserve_bytes: u64 },
}

/// A consumer-group change queued into its offsets partition's Raft log;
/// awaiting it yields once it is committed and applied.
pub type PendingGroupWrite = Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send>>;

/// What a produce's batch became, as the Produce response tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub base_offset: Offset,
    /// The broker's stamp on a LogAppendTime topic, else -1.
    pub log_append_time_ms: i64,
    pub log_start_offset: Offset,
}

/// A produce that has been queued into its partition's Raft log in order;
/// awaiting it yields where the batch went once it meets the acks level.
pub type PendingAppend = Pin<Box<dyn Future<Output = Result<Appended, StoreError>> + Send>>;

#[derive(Debug, Clone, Default)]
pub struct ReadResult {
    pub high_watermark: Offset,
    pub log_start_offset: Offset,
    /// Whole batches, headers patched with their offsets, in offset order.
    /// The first batch may start below the requested offset (Kafka semantics:
    /// the consumer skips the records before its position).
    pub batches: Vec<Bytes>,
}

/// Where one applied batch is: its offsets and the Raft log entry holding it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLocation {
    pub base_offset: Offset,
    pub last_offset: Offset,
    pub log_index: u64,
    pub bytes: u32,
    /// From the batch: the leader epoch (Raft term) it was written in, and
    /// its idempotent producer (-1 when none).
    pub leader_epoch: i32,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
}

/// Where a read may be served from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadFrom {
    Leader,
    AnyReplica,
}

#[derive(Debug, Clone)]
pub struct NodeView {
    pub id: NodeId,
    pub host: String,
    pub port: i32,
    /// Its rack (broker.rack), if it has one.
    pub rack: Option<String>,
    /// This node, or a peer heard from within the liveness window.
    pub alive: bool,
    /// Its Kafka listeners (name -> advertised host:port); empty for a node
    /// that registered none (then host:port serves every listener).
    pub listeners: BTreeMap<String, String>,
}

impl NodeView {
    /// Where a client that came in on listener `listener` reaches this
    /// node; None if the node has no such listener (Kafka then leaves the
    /// node out of Metadata).
    pub fn endpoint(&self, listener: &str) -> Option<(String, i32)> {
        if self.listeners.is_empty() {
            return Some((self.host.clone(), self.port));
        }
        let addr = self.listeners.get(listener)?;
        let (host, port) = crate::config::split_host_port(addr).ok()?;
        Some((host, port as i32))
    }
}

/// One replica of the controller group ([`QuorumView`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumReplica {
    pub node: NodeId,
    /// The index after its last entry (None: not known here).
    pub log_end: Option<u64>,
    /// When it last answered the leader, wall-clock ms (None: not known).
    pub last_ack_ms: Option<i64>,
}

/// The controller group's Raft state (Kafka's DescribeQuorum).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumView {
    pub leader: Option<NodeId>,
    pub term: u64,
    /// The index after the last committed entry.
    pub high_watermark: u64,
    pub voters: Vec<QuorumReplica>,
    /// Learners: nodes that receive the metadata but do not vote.
    pub observers: Vec<QuorumReplica>,
}

#[derive(Debug, Clone)]
pub struct PartitionView {
    pub partition: i32,
    pub leader: Option<NodeId>,
    pub leader_epoch: i32,
    pub replicas: Vec<NodeId>,
    pub isr: Vec<NodeId>,
    /// No leader, but a majority of the replicas is alive: an election is
    /// under way and should end within an election timeout.
    pub electing: bool,
    /// A move is in progress (`crate::cluster::moves`): the replicas joining
    /// and leaving (`replicas` lists both).
    pub reassigning: bool,
    pub adding: Vec<NodeId>,
    pub removing: Vec<NodeId>,
}

#[derive(Debug, Clone)]
pub struct TopicView {
    pub name: String,
    /// Chronik's own topic (`__consumer_offsets`): listed, not writable by clients.
    pub internal: bool,
    pub id: u128,
    pub partitions: Vec<PartitionView>,
    pub configs: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct ClusterView {
    pub cluster_id: String,
    /// The controller group's leader as this node last heard it (None until
    /// the controller has registered the nodes).
    pub controller: Option<NodeId>,
    pub nodes: Vec<NodeView>,
    pub topics: Vec<TopicView>,
    /// Dynamic broker configs, per node and (None) cluster-wide.
    pub broker_configs: crate::cluster::dynamic_config::BrokerConfigs,
}

impl ClusterView {
    /// The node a client should send controller requests to (Metadata and
    /// DescribeCluster's controller id), as answered by node `me`.
    ///
    /// Every node forwards metadata changes to the controller leader (as
    /// KRaft brokers do, KIP-590), so any live node will do: the leader when
    /// it is alive, else `me`. A leader that is known down is never named,
    /// even before the controller group has elected another: librdkafka's
    /// admin client would wait on the dead node for its whole request
    /// timeout. `me` answers NOT_CONTROLLER (retriable) if it cannot forward.
    pub fn controller_for_clients(&self, me: NodeId) -> NodeId {
        self.controller.filter(|c| self.nodes.iter().any(|n| n.id == *c && n.alive)).unwrap_or(me)
    }
}

/// One partition replica hosted on this node, as the node itself sees it.
#[derive(Debug, Clone)]
pub struct ReplicaView {
    pub topic: String,
    pub partition: i32,
    pub group: u64,
    pub leader: Option<NodeId>,
    pub term: u64,
    /// This replica leads and may serve produce and fetch.
    pub serving: bool,
    pub log_start_offset: Offset,
    /// The replica's applied (committed) end: on a follower it trails the
    /// leader's by up to one heartbeat.
    pub high_watermark: Offset,
    /// Raft log positions of this replica (last written, committed, applied).
    pub last_log_index: Option<u64>,
    pub committed_index: Option<u64>,
    pub applied_index: Option<u64>,
    /// The last Raft log index purged here, and the current snapshot's.
    pub purged_index: Option<u64>,
    pub snapshot_index: Option<u64>,
    /// Bytes of the record batches from the log start to the high watermark.
    pub retained_bytes: u64,
}

/// A fingerprint of a replica's committed records, to compare replicas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaDigest {
    pub high_watermark: Offset,
    pub batches: u64,
    pub bytes: u64,
    /// CRC32C over every stored batch (headers patched as served) in order.
    pub crc32c: u32,
}

#[derive(Debug, Clone)]
pub struct TopicSpec {
    pub name: String,
    /// None: the broker default.
    pub partitions: Option<i32>,
    pub replication_factor: Option<i16>,
    pub configs: BTreeMap<String, String>,
    /// A manual replica assignment: partition i's replicas, the first the
    /// preferred leader (then `partitions` and `replication_factor` are None).
    pub assignment: Option<Vec<Vec<NodeId>>>,
}

/// Where a consumer group is coordinated: the leader of its offsets partition.
#[derive(Debug, Clone)]
pub struct CoordinatorView {
    pub tp: TopicPartition,
    pub leader: Option<NodeId>,
    /// This node leads the partition and may serve it.
    pub serving: bool,
    /// The partition's Raft term: a coordinator whose term changed since it
    /// loaded a group must load it again (another node may have changed it).
    pub term: u64,
}

pub trait PartitionStore: Send + Sync + 'static {
    fn node_id(&self) -> NodeId;

    /// Nodes, controller and the topics asked for (all when None), with the
    /// current leader of each partition.
    fn cluster_view(&self, topics: Option<&[String]>) -> ClusterView;

    /// The cluster (Raft HTTP) address of `node`; its admin API is served
    /// there too, under /admin, so that nodes can ask each other.
    fn cluster_addr(&self, node: NodeId) -> Option<String>;

    /// Whether Metadata for an unknown topic creates it.
    fn auto_create_topics(&self) -> bool;

    /// The topic with Kafka topic id `id`, if there is one.
    fn topic_name(&self, id: u128) -> Option<String>;

    /// Topic `name`'s Kafka topic id, if it exists.
    fn topic_id(&self, name: &str) -> Option<u128>;

    fn create_topic(&self, spec: TopicSpec, validate_only: bool) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn delete_topic(&self, name: String) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Grows topic `name` to `count` partitions (CreatePartitions), placed
    /// round-robin or as `assignment` says (a replica list per new
    /// partition), or only checks it (`validate_only`). Returns once the new
    /// partitions have leaders (bounded).
    fn create_partitions(
        &self,
        name: String,
        count: i32,
        assignment: Option<Vec<Vec<NodeId>>>,
        validate_only: bool,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Changes a topic's configs or dynamic broker configs through the
    /// controller (IncrementalAlterConfigs; AlterConfigs with `replace`),
    /// or only checks the change (`validate_only`). Returns once this node's
    /// metadata has it.
    fn alter_configs(
        &self,
        resource: ConfigResource,
        ops: Vec<ConfigOp>,
        replace: bool,
        validate_only: bool,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Waits (bounded, until `deadline` at most) while an election of `tp`
    /// that can end on this node is under way, so that produces that would
    /// arrive in its first moments are neither refused nor reordered.
    fn leader_ready(&self, tp: &TopicPartition, deadline: tokio::time::Instant) -> impl Future<Output = ()> + Send;

    /// Validates the batch and queues it into the partition's log, or
    /// refuses it at once (no waiting: see [`Self::leader_ready`]). Calls made
    /// one after another are ordered in the log in that order, even though the
    /// returned [`PendingAppend`]s are awaited concurrently.
    fn append(
        &self,
        tp: TopicPartition,
        batch: Bytes,
        acks: Acks
    ) -> impl Future<Output = Result<PendingAppend, StoreError>> + Send;

    /// Batches from `offset` up to the high watermark, at most `max_bytes`
    /// (but always one whole batch if any is available; none for 0). From
    /// the serving leader, or with `ReadFrom::AnyReplica` from this node's
    /// replica, leader or follower (KIP-392), up to its own high watermark:
    /// committed records only; an offset beyond it reads nothing (the
    /// leader may be further along).
    fn read(&self, tp: &TopicPartition, offset: Offset, max_bytes: usize, from: ReadFrom) -> Result<ReadResult, StoreError>;

    /// KIP-392: the replica a consumer in `client_rack` should read `tp`
    /// from instead of this node, its leader (a live, in-sync replica in
    /// that rack), if the replica selector is rack-aware and this node is
    /// not in that rack itself.
    fn preferred_read_replica(&self, tp: &TopicPartition, client_rack: &str) -> Option<NodeId>;

    /// DeleteRecords: moves the log start of `tp` (led here) to `offset`
    /// (-1: the high watermark) on every replica, through its Raft group.
    /// Returns the log start after it (the low watermark).
    fn delete_records(&self, tp: &TopicPartition, offset: Offset) -> impl Future<Output = Result<Offset, StoreError>> + Send;

    /// (log start offset, high watermark).
    fn offsets(&self, tp: &TopicPartition) -> Result<(Offset, Offset), StoreError>;

    /// The first batch whose max timestamp is >= `timestamp`, with its base offset.
    fn batch_at_timestamp(&self, tp: &TopicPartition, timestamp: i64) -> Result<Option<Bytes>, StoreError>;

    /// The newest timestamp of any record of the partition (None: none).
    fn newest_timestamp(&self, tp: &TopicPartition) -> Result<Option<i64>, StoreError>;

    /// The idempotent producers the partition's leader remembers
    /// (DescribeProducers), by producer id.
    fn producers(&self, tp: &TopicPartition) -> Result<Vec<(i64, crate::log::producers::ProducerState)>, StoreError>;

    /// The partition replicas hosted on this node.
    fn replicas(&self) -> Vec<ReplicaView>;

    /// A fingerprint of the local replica's committed records (leader or not).
    fn replica_digest(&self, tp: &TopicPartition) -> Result<ReplicaDigest, StoreError>;

    /// Where the local replica's batches are (leader or not), to compare replicas.
    fn replica_batches(&self, tp: &TopicPartition, from: Offset, limit: usize) -> Result<Vec<BatchLocation>, StoreError>;

    /// Changes whenever the high watermark of `tp` moves (for long polls).
    fn watch_high_watermark(&self, tp: &TopicPartition) -> Result<watch::Receiver<Offset>, StoreError>;

    /// The leader epoch at or below `epoch` that `tp` has data of, and the
    /// offset where that epoch's data ends (OffsetForLeaderEpoch).
    fn epoch_end_offset(&self, tp: &TopicPartition, epoch: i32) -> Result<Option<(i32, Offset)>, StoreError>;

    /// A producer id no other producer of the cluster has had (InitProducerId).
    fn allocate_producer_id(&self) -> impl Future<Output = Result<i64, StoreError>> + Send;

    /// Creates the offsets topic if it does not exist yet (first FindCoordinator).
    fn ensure_offsets_topic(&self) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The coordinator of `group`; UnknownTopicOrPartition before the
    /// offsets topic exists.
    fn coordinator(&self, group: &str) -> Result<CoordinatorView, StoreError>;

    /// Replicates a consumer-group change through its offsets partition,
    /// which this node must serve; returns once it is committed and applied.
    fn group_write(&self, cmd: GroupCommand) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Queues a consumer-group change into its offsets partition's log and
    /// returns at once: changes queued one after another are applied in that
    /// order (offset commits pipelined on one connection).
    fn group_submit(&self, cmd: GroupCommand) -> impl Future<Output = Result<PendingGroupWrite, StoreError>> + Send;

    /// A group's committed offsets, from the offsets partition this node serves.
    fn committed_offsets(&self, group: &str) -> Result<Vec<(String, i32, CommittedOffset)>, StoreError>;

    /// A group's last completed generation, from the offsets partition this node serves.
    fn group_record(&self, group: &str) -> Result<Option<GroupRecord>, StoreError>;

    /// Every group stored in the offsets partitions this node serves.
    fn served_group_names(&self) -> Result<Vec<String>, StoreError>;

    /// ElectLeaders (preferred): hands `tp`'s leadership to its first
    /// replica, through whichever node leads it.
    fn elect_preferred_leader(&self, tp: &TopicPartition) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Moves the leadership of `tp` (led by this node) to replica `to`;
    /// returns once `to` leads, or Timeout.
    fn transfer_leadership(&self, tp: &TopicPartition, to: NodeId) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// AlterPartitionReassignments: starts, changes or cancels (None) the
    /// moves of partitions, each answered on its own; with
    /// `allow_rf_change` false a target of another size is refused. Returns
    /// once this node's metadata has the moves; their leaders carry them out.
    fn reassign_partitions(
        &self,
        moves: Vec<(TopicPartition, Option<Vec<NodeId>>)>,
        allow_rf_change: bool,
    ) -> impl Future<Output = Vec<Result<(), StoreError>>> + Send;

    /// The move of `tp` as its leader last stepped it (None: not moving, or
    /// not stepped yet); NotLeader on another node.
    fn move_progress(&self, tp: &TopicPartition) -> Result<Option<crate::cluster::moves::MoveProgress>, StoreError>;

    /// Free bytes on this node's data disk (DescribeLogDirs), if known.
    fn disk_free_bytes(&self) -> Option<u64>;

    /// Starts decommissioning `node` (its replicas move away, then it
    /// leaves the cluster), or with `cancel` stops it.
    fn decommission(&self, node: NodeId, cancel: bool) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Moves every partition of `topic` to `rf` replicas; returns the
    /// moves started (their leaders carry them out).
    fn set_replication_factor(&self, topic: String, rf: usize) -> impl Future<Output = Result<Vec<(TopicPartition, Vec<NodeId>)>, StoreError>> + Send;

    /// Each node's place in the cluster (controller role, draining).
    fn membership(&self) -> BTreeMap<NodeId, crate::cluster::membership::NodeMembership>;

    /// The controller group's Raft state as this node sees it.
    fn controller_quorum(&self) -> QuorumView;

    /// Users' SCRAM credentials and the ACLs, as this node's metadata has them.
    fn security(&self) -> std::sync::Arc<crate::security::SecurityState>;

    /// Changes credentials or ACLs through the controller; returns once
    /// this node's metadata has the change (bounded).
    fn alter_security(&self, cmd: crate::security::SecurityCommand) -> impl Future<Output = Result<(), StoreError>> + Send;
}
