//! Every metric of a node, in one place, with bounded labels (API names and
//! error codes; never a label per partition).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApiLabels {
    pub node_id: String,
    pub api: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApiErrorLabels {
    pub node_id: String,
    pub api: &'static str,
    pub error_code: i16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NodeLabels {
    pub node_id: String,
}

/// Raft series per kind of group: the one controller group, or the
/// partition groups in aggregate (never a label per group).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GroupKindLabels {
    pub node_id: String,
    /// "controller" or "partitions".
    pub group_kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VoteLabels {
    pub node_id: String,
    /// "pre_vote" or "vote".
    pub kind: &'static str,
}

/// Client authentications: a handful of mechanisms, two results.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AuthLabels {
    pub node_id: String,
    /// "SCRAM-SHA-512", "PLAIN", "SSL" (a client certificate).
    pub mechanism: String,
    /// "ok", "failed".
    pub result: &'static str,
}

/// Denied requests: bounded by APIs times resource types.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeniedLabels {
    pub node_id: String,
    /// The API whose check failed ("produce").
    pub api: &'static str,
    /// "TOPIC", "GROUP", "CLUSTER".
    pub resource_type: &'static str,
}

/// A named bound (see `config::Limits`): a few dozen at most.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LimitLabels {
    pub node_id: String,
    pub limit: &'static str,
}

/// Why a log start moved: "retention" or "delete_records".
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TrimLabels {
    pub node_id: String,
    pub reason: &'static str,
}

/// A state of sled's log segments: free, active, inactive, draining.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SegmentLabels {
    pub node_id: String,
    pub state: &'static str,
}

/// Consumer groups are few and named by their users: one series each.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConsumerGroupLabels {
    pub node_id: String,
    pub group: String,
}

pub struct Metrics {
    pub node_id: String,
    pub kafka_requests: Family<ApiLabels, Counter>,
    pub kafka_request_errors: Family<ApiErrorLabels, Counter>,
    pub kafka_request_latency: Family<ApiLabels, Histogram>,
    pub kafka_bytes_in: Family<NodeLabels, Counter>,
    pub kafka_bytes_out: Family<NodeLabels, Counter>,
    pub kafka_connections: Family<NodeLabels, Gauge>,
    pub authentications: Family<AuthLabels, Counter>,
    pub authorization_denied: Family<DeniedLabels, Counter>,
    pub partitions: Family<NodeLabels, Gauge>,
    pub partition_leaders: Family<NodeLabels, Gauge>,
    pub storage_flushes: Family<NodeLabels, Counter>,
    pub compactions: Family<NodeLabels, Counter>,
    pub compaction_batches_rewritten: Family<NodeLabels, Counter>,
    pub compaction_bytes_removed: Family<NodeLabels, Counter>,
    pub storage_flush_seconds: Family<NodeLabels, Counter<f64>>,
    pub storage_flush_duration: Family<NodeLabels, Histogram>,
    pub storage_flush_writers: Family<NodeLabels, Histogram>,
    pub storage_disk_bytes: Family<NodeLabels, Gauge>,
    pub storage_disk_free_bytes: Family<NodeLabels, Gauge>,
    pub storage_segments: Family<SegmentLabels, Gauge>,
    pub storage_live_bytes: Family<NodeLabels, Gauge>,
    pub storage_relocation_queue: Family<NodeLabels, Gauge>,
    pub raft_leader_elections: Family<NodeLabels, Counter>,
    pub leader_balance_moves: Family<NodeLabels, Counter>,
    pub reassignments_completed: Family<NodeLabels, Counter>,
    pub reassignments_in_progress: Family<NodeLabels, Gauge>,
    pub cluster_nodes: Family<NodeLabels, Gauge>,
    pub cluster_nodes_draining: Family<NodeLabels, Gauge>,
    pub controller_voters: Family<NodeLabels, Gauge>,
    pub raft_append_entries: Family<NodeLabels, Counter>,
    pub raft_vote_requests: Family<VoteLabels, Counter>,
    pub raft_heartbeats: Family<NodeLabels, Counter>,
    pub raft_log_entries: Family<GroupKindLabels, Gauge>,
    pub raft_current_term: Family<GroupKindLabels, Gauge>,
    pub raft_commit_index: Family<GroupKindLabels, Gauge>,
    pub partitions_under_replicated: Family<NodeLabels, Gauge>,
    pub partitions_leaderless: Family<NodeLabels, Gauge>,
    pub consumer_group_lag: Family<ConsumerGroupLabels, Gauge>,
    pub limit_hits: Family<LimitLabels, Counter>,
    pub coordinator_groups: Family<NodeLabels, Gauge>,
    pub log_trims: Family<TrimLabels, Counter>,
    pub log_trimmed_records: Family<TrimLabels, Counter>,
    pub log_snapshots: Family<NodeLabels, Counter>,
}

impl Metrics {
    pub fn new(node_id: crate::NodeId) -> Self {
        Self {
            node_id: node_id.to_string(),
            kafka_requests: Family::default(),
            kafka_request_errors: Family::default(),
            kafka_request_latency: Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.0001, 2.0, 18))),
            kafka_bytes_in: Family::default(),
            kafka_bytes_out: Family::default(),
            kafka_connections: Family::default(),
            authentications: Family::default(),
            authorization_denied: Family::default(),
            partitions: Family::default(),
            partition_leaders: Family::default(),
            storage_flushes: Family::default(),
            compactions: Family::default(),
            compaction_batches_rewritten: Family::default(),
            compaction_bytes_removed: Family::default(),
            storage_flush_seconds: Family::default(),
            storage_flush_duration: Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.0001, 2.0, 16))),
            storage_flush_writers: Family::new_with_constructor(|| Histogram::new(exponential_buckets(1.0, 2.0, 12))),
            storage_disk_bytes: Family::default(),
            storage_disk_free_bytes: Family::default(),
            storage_segments: Family::default(),
            storage_live_bytes: Family::default(),
            storage_relocation_queue: Family::default(),
            raft_leader_elections: Family::default(),
            leader_balance_moves: Family::default(),
            reassignments_completed: Family::default(),
            reassignments_in_progress: Family::default(),
            cluster_nodes: Family::default(),
            cluster_nodes_draining: Family::default(),
            controller_voters: Family::default(),
            raft_append_entries: Family::default(),
            raft_vote_requests: Family::default(),
            raft_heartbeats: Family::default(),
            raft_log_entries: Family::default(),
            raft_current_term: Family::default(),
            raft_commit_index: Family::default(),
            partitions_under_replicated: Family::default(),
            partitions_leaderless: Family::default(),
            consumer_group_lag: Family::default(),
            limit_hits: Family::default(),
            coordinator_groups: Family::default(),
            log_trims: Family::default(),
            log_trimmed_records: Family::default(),
            log_snapshots: Family::default(),
        }
    }

    pub fn node(&self) -> NodeLabels {
        NodeLabels { node_id: self.node_id.clone() }
    }

    pub fn kind(&self, group_kind: &'static str) -> GroupKindLabels {
        GroupKindLabels { node_id: self.node_id.clone(), group_kind }
    }

    /// Counts one bite of the bound `limit` (a `config::Limits` name).
    pub fn limit_hit(&self, limit: &'static str) {
        self.limit_hits.get_or_create(&LimitLabels { node_id: self.node_id.clone(), limit }).inc();
    }

    /// Counts a log start moved by `records` offsets on a partition led here.
    pub fn log_trimmed(&self, reason: &'static str, records: i64) {
        let labels = TrimLabels { node_id: self.node_id.clone(), reason };
        self.log_trims.get_or_create(&labels).inc();
        self.log_trimmed_records.get_or_create(&labels).inc_by(records.max(0) as u64);
    }

    /// Counts a snapshot asked for so that a replica's Raft log is purged.
    pub fn log_snapshot(&self) {
        self.log_snapshots.get_or_create(&self.node()).inc();
    }

    pub fn api(&self, api: &'static str) -> ApiLabels {
        ApiLabels { node_id: self.node_id.clone(), api }
    }

    pub fn register(&self, r: &mut Registry) {
        r.register("chronik_kafka_requests", "Kafka requests handled, by API", self.kafka_requests.clone());
        r.register("chronik_kafka_request_errors", "Kafka responses carrying an error code, by API and code", self.kafka_request_errors.clone());
        r.register("chronik_kafka_request_latency_seconds", "Kafka request latency, by API", self.kafka_request_latency.clone());
        r.register("chronik_kafka_bytes_in", "Record bytes produced", self.kafka_bytes_in.clone());
        r.register("chronik_kafka_bytes_out", "Record bytes fetched", self.kafka_bytes_out.clone());
        r.register("chronik_kafka_connections", "Open Kafka client connections", self.kafka_connections.clone());
        r.register("chronik_authentications", "Client authentications (SASL, TLS client certificates), by mechanism and result", self.authentications.clone());
        r.register(
            "chronik_authorization_denied",
            "Requests (or parts of them) the ACL authorizer denied, by API and resource type",
            self.authorization_denied.clone());
        r.register("chronik_partitions", "Partition replicas on this node", self.partitions.clone());
        r.register("chronik_partition_leaders", "Partitions led by this node", self.partition_leaders.clone());
        r.register("chronik_storage_flushes", "Group-commit flushes (flush + fsync)", self.storage_flushes.clone());
        r.register("chronik_compactions", "Compactions this node's replicas have run", self.compactions.clone());
        r.register("chronik_compaction_batches_rewritten", "Record batches compaction rewrote without some of their records", self.compaction_batches_rewritten.clone());
        r.register("chronik_compaction_bytes_removed", "Bytes compaction removed from the retained batches", self.compaction_bytes_removed.clone());
        r.register("chronik_storage_flush_seconds", "Time spent in group-commit flushes", self.storage_flush_seconds.clone());
        r.register("chronik_storage_flush_duration_seconds", "Duration of one group-commit flush (flush + fsync)", self.storage_flush_duration.clone());
        r.register("chronik_storage_flush_writers", "Writes made durable by one group-commit flush", self.storage_flush_writers.clone());
        r.register("chronik_storage_disk_bytes", "Bytes the database occupies on disk", self.storage_disk_bytes.clone());
        r.register("chronik_storage_disk_free_bytes", "Bytes free on the data disk", self.storage_disk_free_bytes.clone());
        r.register("chronik_storage_segments", "sled log segments by state (free ones are reused before the file grows)", self.storage_segments.clone());
        r.register("chronik_storage_relocation_queue_pages", "Pages sled has queued for relocation out of draining segments", self.storage_relocation_queue.clone());
        r.register("chronik_storage_live_bytes", "Bytes of live pages in sled's log; the rest of the file is reclaimable", self.storage_live_bytes.clone());
        r.register("raft_leader_elections", "Raft groups this node became leader of", self.raft_leader_elections.clone());
        r.register("chronik_leader_balance_moves", "Partitions this node handed back to their preferred leader (the leader balancer)", self.leader_balance_moves.clone());
        r.register("chronik_reassignments_completed", "Partition moves this node finished as the partition's leader", self.reassignments_completed.clone());
        r.register("chronik_reassignments_in_progress", "Partition moves under way whose partition this node leads", self.reassignments_in_progress.clone());
        r.register("chronik_cluster_nodes", "Nodes of the cluster, as this node's metadata lists them (decommissioning ones included)", self.cluster_nodes.clone());
        r.register("chronik_cluster_nodes_draining", "Nodes being decommissioned, as this node's metadata lists them", self.cluster_nodes_draining.clone());
        r.register("chronik_controller_voters", "Voters of the controller group, as this node sees its membership", self.controller_voters.clone());
        r.register("raft_append_entries", "AppendEntries requests received (heartbeats included)", self.raft_append_entries.clone());
        r.register("raft_vote_requests", "Vote and pre-vote requests received", self.raft_vote_requests.clone());
        r.register("raft_heartbeats", "Heartbeats sent for the groups this node leads", self.raft_heartbeats.clone());
        r.register("raft_log_entries", "Entries in the Raft logs on this node", self.raft_log_entries.clone());
        r.register("raft_current_term", "Raft term: the controller's, and the highest of the partition groups", self.raft_current_term.clone());
        r.register("raft_commit_index", "Raft commit index: the controller's, and the sum over partition groups", self.raft_commit_index.clone());
        r.register("chronik_partitions_under_replicated", "Partitions led here with a replica that is not alive", self.partitions_under_replicated.clone());
        r.register("chronik_partitions_leaderless", "Partitions with no leader, as this node sees the cluster", self.partitions_leaderless.clone());
        r.register("chronik_limit_hits", "Times a named bound refused, capped or held back a request, by bound", self.limit_hits.clone());
        r.register("chronik_coordinator_groups", "Consumer groups the coordinator holds in memory (live ones; idle groups are dropped and reloaded on use)", self.coordinator_groups.clone());
        r.register("chronik_log_trims", "Log start moves of partitions led here, by reason (retention, delete_records)", self.log_trims.clone());
        r.register("chronik_log_trimmed_records", "Offsets the log start of partitions led here moved past, by reason", self.log_trimmed_records.clone());
        r.register("chronik_log_snapshots", "Snapshots taken at a checkpoint below the log start, so that a replica's Raft log is purged up to it", self.log_snapshots.clone());
        r.register("chronik_consumer_group_lag", "Records behind the high watermark, summed over a group's committed partitions hosted here", self.consumer_group_lag.clone());
    }
}
