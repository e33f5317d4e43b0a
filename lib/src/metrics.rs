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

pub struct Metrics {
    pub node_id: String,
    pub kafka_requests: Family<ApiLabels, Counter>,
    pub kafka_request_errors: Family<ApiErrorLabels, Counter>,
    pub kafka_request_latency: Family<ApiLabels, Histogram>,
    pub kafka_bytes_in: Family<NodeLabels, Counter>,
    pub kafka_bytes_out: Family<NodeLabels, Counter>,
    pub kafka_connections: Family<NodeLabels, Gauge>,
    pub partitions: Family<NodeLabels, Gauge>,
    pub partition_leaders: Family<NodeLabels, Gauge>,
    pub storage_flushes: Family<NodeLabels, Counter>,
    pub storage_flush_seconds: Family<NodeLabels, Counter<f64>>,
    pub storage_disk_bytes: Family<NodeLabels, Gauge>,
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
            partitions: Family::default(),
            partition_leaders: Family::default(),
            storage_flushes: Family::default(),
            storage_flush_seconds: Family::default(),
            storage_disk_bytes: Family::default(),
        }
    }

    pub fn node(&self) -> NodeLabels {
        NodeLabels { node_id: self.node_id.clone() }
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
        r.register("chronik_partitions", "Partition replicas on this node", self.partitions.clone());
        r.register("chronik_partition_leaders", "Partitions led by this node", self.partition_leaders.clone());
        r.register("chronik_storage_flushes", "Group-commit flushes (flush + fsync)", self.storage_flushes.clone());
        r.register("chronik_storage_flush_seconds", "Time spent in group-commit flushes", self.storage_flush_seconds.clone());
        r.register("chronik_storage_disk_bytes", "Bytes the database occupies on disk", self.storage_disk_bytes.clone());
    }
}
