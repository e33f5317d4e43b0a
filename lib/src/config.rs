//! Node configuration: one TOML file may describe the whole cluster; each node
//! is told its id. Flags override the file.
//!
//! ```toml
//! data_dir = "/var/lib/chronik"
//! auto_create_topics = true
//! [cluster]
//! nodes = [
//!   { id = 1, kafka_addr = "node1:9092", raft_addr = "node1:9192" },
//! ]
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::types::{NodeAddr, NodeId};

pub const KAFKA_PORT_DEFAULT: u16 = 9092;
/// Raft/cluster HTTP listens at the Kafka port + this.
pub const RAFT_PORT_OFFSET: u16 = 100;
/// Admin HTTP API and /metrics listen at the Kafka port + this.
pub const ADMIN_PORT_OFFSET: u16 = 200;
/// Largest Kafka request frame accepted by default (100 MiB).
pub const FRAME_BYTES_MAX_DEFAULT: usize = 100 * 1024 * 1024;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterNode {
    pub id: NodeId,
    pub kafka_addr: String,
    #[serde(default)]
    pub raft_addr: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSection {
    #[serde(default)]
    pub nodes: Vec<ClusterNode>,
}

/// The TOML file. Every field is optional; see [`NodeConfig`] for defaults.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub node_id: Option<NodeId>,
    pub data_dir: Option<PathBuf>,
    pub kafka_listen: Option<String>,
    pub advertised_addr: Option<String>,
    pub raft_listen: Option<String>,
    pub admin_listen: Option<String>,
    pub auto_create_topics: Option<bool>,
    pub default_partitions: Option<i32>,
    pub default_replication_factor: Option<i16>,
    pub frame_bytes_max: Option<usize>,
    pub heartbeat_interval_ms: Option<u64>,
    pub election_timeout_min_ms: Option<u64>,
    pub election_timeout_max_ms: Option<u64>,
    pub offsets_topic_partitions: Option<i32>,
    pub group_initial_rebalance_delay_ms: Option<u64>,
    pub group_min_session_timeout_ms: Option<i32>,
    pub group_max_session_timeout_ms: Option<i32>,
    pub min_free_disk_bytes: Option<u64>,
    #[serde(default)]
    pub cluster: ClusterSection,
}

/// The resolved configuration of one node.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub node_id: NodeId,
    pub data_dir: PathBuf,
    pub kafka_listen: String,
    pub raft_listen: String,
    pub admin_listen: String,
    /// Every node of the cluster (just this one when standalone).
    pub nodes: BTreeMap<NodeId, NodeAddr>,
    pub auto_create_topics: bool,
    pub default_partitions: i32,
    /// None: min(3, number of nodes).
    pub default_replication_factor: Option<i16>,
    pub frame_bytes_max: usize,
    pub heartbeat_interval_ms: u64,
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    /// Partitions of `__consumer_offsets`, created on first use (Kafka: 50).
    pub offsets_topic_partitions: i32,
    /// How long a new group waits for more members before its first
    /// rebalance completes (Kafka's group.initial.rebalance.delay.ms).
    pub group_initial_rebalance_delay_ms: u64,
    /// Session timeouts a member may ask for (Kafka's group.min/max.session.timeout.ms).
    pub group_min_session_timeout_ms: i32,
    pub group_max_session_timeout_ms: i32,
    /// Below this much free space on the data disk the node takes no more
    /// writes (produce, replicated appends) and gives up its leaderships,
    /// so that the disk never fills up under sled.
    pub min_free_disk_bytes: u64,
}

/// See [`NodeConfig::min_free_disk_bytes`].
pub const MIN_FREE_DISK_BYTES_DEFAULT: u64 = 64 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid address {0:?}: expected host:port")]
    BadAddr(String),
    #[error("node {0} is not listed in [cluster] nodes")]
    UnknownNode(NodeId),
    #[error("{0}")]
    Invalid(String),
}

/// Splits "host:port".
pub fn split_host_port(addr: &str) -> Result<(String, u16), ConfigError> {
    let (host, port) = addr.rsplit_once(':').ok_or_else(|| ConfigError::BadAddr(addr.into()))?;
    let port = port.parse().map_err(|_| ConfigError::BadAddr(addr.into()))?;
    Ok((host.trim_start_matches('[').trim_end_matches(']').to_string(), port))
}

fn with_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The Raft address of a node whose config gives only its Kafka address.
pub fn default_raft_addr(kafka_addr: &str) -> Result<String, ConfigError> {
    let (host, port) = split_host_port(kafka_addr)?;
    Ok(with_port(&host, port + RAFT_PORT_OFFSET))
}

impl FileConfig {
    /// Resolves a file config into the node's config. A file without
    /// `[cluster]` nodes means standalone: a one-node cluster of this node.
    pub fn resolve(self) -> Result<NodeConfig, ConfigError> {
        let node_id = self.node_id.unwrap_or(1);
        let mut nodes = BTreeMap::new();
        for n in &self.cluster.nodes {
            let raft_addr = match &n.raft_addr {
                Some(a) => a.clone(),
                None => default_raft_addr(&n.kafka_addr)?,
            };
            split_host_port(&n.kafka_addr)?;
            split_host_port(&raft_addr)?;
            if nodes.insert(n.id, NodeAddr { kafka_addr: n.kafka_addr.clone(), raft_addr }).is_some() {
                return Err(ConfigError::Invalid(format!("node {} is listed twice", n.id)));
            }
        }
        let advertised = match (&self.advertised_addr, nodes.get(&node_id)) {
            (Some(a), _) => a.clone(),
            (None, Some(n)) => n.kafka_addr.clone(),
            (None, None) => format!("localhost:{KAFKA_PORT_DEFAULT}"),
        };
        let (_, adv_port) = split_host_port(&advertised)?;
        let kafka_listen = self.kafka_listen.unwrap_or_else(|| format!("0.0.0.0:{adv_port}"));
        let (_, kafka_port) = split_host_port(&kafka_listen)?;
        if nodes.is_empty() {
            let (host, _) = split_host_port(&advertised)?;
            let raft_addr = with_port(&host, kafka_port + RAFT_PORT_OFFSET);
            nodes.insert(node_id, NodeAddr { kafka_addr: advertised.clone(), raft_addr });
        }
        let me = nodes.get_mut(&node_id).ok_or(ConfigError::UnknownNode(node_id))?;
        me.kafka_addr = advertised;
        let (_, my_raft_port) = split_host_port(&me.raft_addr)?;
        let raft_listen = self.raft_listen.unwrap_or_else(|| format!("0.0.0.0:{my_raft_port}"));
        let admin_listen = self.admin_listen.unwrap_or_else(|| format!("0.0.0.0:{}", kafka_port + ADMIN_PORT_OFFSET));
        split_host_port(&raft_listen)?;
        split_host_port(&admin_listen)?;
        let default_partitions = self.default_partitions.unwrap_or(1);
        if default_partitions < 1 {
            return Err(ConfigError::Invalid("default_partitions must be at least 1".into()));
        }
        let heartbeat_interval_ms = self.heartbeat_interval_ms.unwrap_or(300);
        let election_timeout_min_ms = self.election_timeout_min_ms.unwrap_or(500);
        let election_timeout_max_ms = self.election_timeout_max_ms.unwrap_or(800);
        if !(heartbeat_interval_ms < election_timeout_min_ms && election_timeout_min_ms < election_timeout_max_ms) {
            return Err(ConfigError::Invalid(
                "need heartbeat_interval_ms < election_timeout_min_ms < election_timeout_max_ms".into(),
            ));
        }
        let offsets_topic_partitions = self.offsets_topic_partitions.unwrap_or(16);
        if !(1..=1000).contains(&offsets_topic_partitions) {
            return Err(ConfigError::Invalid("offsets_topic_partitions must be 1..=1000".into()));
        }
        let group_min_session_timeout_ms = self.group_min_session_timeout_ms.unwrap_or(6_000);
        let group_max_session_timeout_ms = self.group_max_session_timeout_ms.unwrap_or(1_800_000);
        if !(0 < group_min_session_timeout_ms && group_min_session_timeout_ms <= group_max_session_timeout_ms) {
            return Err(ConfigError::Invalid("need 0 < group_min_session_timeout_ms <= group_max_session_timeout_ms".into()));
        }
        Ok(NodeConfig {
            node_id,
            offsets_topic_partitions,
            group_initial_rebalance_delay_ms: self.group_initial_rebalance_delay_ms.unwrap_or(3_000),
            group_min_session_timeout_ms,
            group_max_session_timeout_ms,
            min_free_disk_bytes: self.min_free_disk_bytes.unwrap_or(MIN_FREE_DISK_BYTES_DEFAULT),
            data_dir: self.data_dir.unwrap_or_else(|| PathBuf::from("./data")),
            kafka_listen,
            raft_listen,
            admin_listen,
            nodes,
            auto_create_topics: self.auto_create_topics.unwrap_or(true),
            default_partitions,
            default_replication_factor: self.default_replication_factor,
            frame_bytes_max: self.frame_bytes_max.unwrap_or(FRAME_BYTES_MAX_DEFAULT),
            heartbeat_interval_ms,
            election_timeout_min_ms,
            election_timeout_max_ms,
        })
    }
}

impl NodeConfig {
    pub fn replication_factor_default(&self) -> i16 {
        self.default_replication_factor.unwrap_or_else(|| self.nodes.len().min(3) as i16)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standalone_defaults() {
        let c = FileConfig::default().resolve().unwrap();
        assert_eq!(c.node_id, 1);
        assert_eq!(c.kafka_listen, "0.0.0.0:9092");
        assert_eq!(c.raft_listen, "0.0.0.0:9192");
        assert_eq!(c.admin_listen, "0.0.0.0:9292");
        assert_eq!(c.nodes[&1].kafka_addr, "localhost:9092");
        assert_eq!(c.replication_factor_default(), 1);
    }

    #[test]
    fn cluster_file() {
        let f: FileConfig = toml::from_str(
            r#"
            node_id = 2
            [cluster]
            nodes = [
              { id = 1, kafka_addr = "n1:9092" },
              { id = 2, kafka_addr = "n2:9093", raft_addr = "n2:7000" },
              { id = 3, kafka_addr = "n3:9094" },
            ]"#,
        )
        .unwrap();
        let c = f.resolve().unwrap();
        assert_eq!(c.nodes[&1].raft_addr, "n1:9192");
        assert_eq!(c.kafka_listen, "0.0.0.0:9093");
        assert_eq!(c.raft_listen, "0.0.0.0:7000");
        assert_eq!(c.admin_listen, "0.0.0.0:9293");
        assert_eq!(c.replication_factor_default(), 3);
    }

    #[test]
    fn rejects_unknown_fields_and_nodes() {
        assert!(toml::from_str::<FileConfig>("nodeid = 1").is_err());
        let f = FileConfig { node_id: Some(9), cluster: ClusterSection { nodes: vec![ClusterNode { id: 1, kafka_addr: "a:1".into(), raft_addr: None }] }, ..Default::default() };
        assert!(matches!(f.resolve(), Err(ConfigError::UnknownNode(9))));
    }
}
