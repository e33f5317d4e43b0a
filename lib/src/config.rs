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

use crate::log::retention::RetentionDefaults;
use crate::{NodeAddr, NodeId};

pub const KAFKA_PORT_DEFAULT: u16 = 9092;
/// Raft/cluster HTTP listens at the Kafka port + this.
pub const RAFT_PORT_OFFSET: u16 = 100;
/// Admin HTTP API and /metrics listen at the Kafka port + this.
pub const ADMIN_PORT_OFFSET: u16 = 200;
/// Largest Kafka request frame accepted by default (100 MiB, Kafka's
/// socket.request.max.bytes).
pub const FRAME_BYTES_MAX_DEFAULT: usize = 100 * 1024 * 1024;

/// The bounds on what clients can make a node spend. Each has a TOML key and
/// a flag of the same name, Kafka's name where Kafka has one, and a metric
/// that counts when it bites (`chronik_limit_hits_total{limit=...}`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest request frame (Kafka's socket.request.max.bytes); a larger one
    /// closes the connection unread.
    pub frame_bytes_max: usize,
    /// Largest record batch a topic takes unless its max.message.bytes says
    /// otherwise (Kafka's message.max.bytes): MESSAGE_TOO_LARGE beyond.
    pub message_max_bytes: usize,
    /// Most bytes the records of one compressed batch may inflate to when
    /// they are validated; beyond, INVALID_RECORD. Decompression streams, so
    /// this bounds CPU, not memory.
    pub batch_decompressed_bytes_max: usize,
    /// Most record bytes in one Fetch response, whatever the client asks
    /// (Kafka's fetch.max.bytes).
    pub fetch_max_bytes: usize,
    /// Most bytes of requests being read, decoded or handled on this node at
    /// once (Kafka's queued.max.request.bytes); connections wait beyond it.
    pub queued_max_request_bytes: usize,
    /// Requests of one connection in flight at once; the connection is not
    /// read further until one completes.
    pub connection_requests_in_flight_max: usize,
    /// Open Kafka connections on this node (Kafka's max.connections); more
    /// are closed at once.
    pub max_connections: usize,
    /// Open Kafka connections from one IP address (Kafka's max.connections.per.ip).
    pub max_connections_per_ip: usize,
    /// Most bytes of record data in one AppendEntries to a follower: a far
    /// behind follower catches up in requests of this size.
    pub replication_append_bytes_max: usize,
    /// A follower that has not caught up with its leader's log within this
    /// long is out of the ISR (Kafka's replica.lag.time.max.ms).
    pub replica_lag_time_max_ms: u64,
    /// Memory for the keys one compaction of a partition holds at once
    /// (Kafka's log.cleaner.dedupe.buffer.size): a compaction whose dirty
    /// part has more keys compacts what fits and leaves the rest for the next.
    pub log_cleaner_dedupe_buffer_bytes: usize,
    /// Largest frame a connection may send before it has authenticated on
    /// a SASL listener (Kafka's sasl.server.max.receive.size); larger
    /// closes it.
    pub sasl_server_max_receive_size: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            frame_bytes_max: FRAME_BYTES_MAX_DEFAULT,
            message_max_bytes: 1_048_588,
            batch_decompressed_bytes_max: 64 << 20,
            fetch_max_bytes: 55 << 20,
            queued_max_request_bytes: 512 << 20,
            connection_requests_in_flight_max: 128,
            max_connections: 10_000,
            max_connections_per_ip: 1_000,
            replication_append_bytes_max: 8 << 20,
            replica_lag_time_max_ms: 30_000,
            log_cleaner_dedupe_buffer_bytes: 128 << 20,
            sasl_server_max_receive_size: 512 << 10,
        }
    }
}

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
    pub group_consumer_heartbeat_interval_ms: Option<u64>,
    pub group_consumer_session_timeout_ms: Option<u64>,
    pub group_consumer_max_size: Option<usize>,
    pub min_free_disk_bytes: Option<u64>,
    pub cache_bytes: Option<u64>,
    pub message_max_bytes: Option<usize>,
    pub batch_decompressed_bytes_max: Option<usize>,
    pub fetch_max_bytes: Option<usize>,
    pub queued_max_request_bytes: Option<usize>,
    pub connection_requests_in_flight_max: Option<usize>,
    pub max_connections: Option<usize>,
    pub max_connections_per_ip: Option<usize>,
    pub replication_append_bytes_max: Option<usize>,
    pub replica_lag_time_max_ms: Option<u64>,
    pub log_cleaner_dedupe_buffer_bytes: Option<usize>,
    pub sasl_server_max_receive_size: Option<usize>,
    pub log_retention_ms: Option<i64>,
    pub log_retention_hours: Option<i64>,
    pub log_retention_bytes: Option<i64>,
    pub log_retention_check_interval_ms: Option<u64>,
    pub log_cleaner_backoff_ms: Option<u64>,
    pub auto_leader_rebalance_enable: Option<bool>,
    pub leader_imbalance_check_interval_ms: Option<u64>,
    pub leader_imbalance_per_broker_percentage: Option<u32>,
    pub offsets_retention_minutes: Option<i64>,
    pub offsets_retention_ms: Option<i64>,
    pub offsets_retention_check_interval_ms: Option<u64>,
    pub log_segment_bytes: Option<u64>,
    pub log_roll_ms: Option<i64>,
    pub log_roll_hours: Option<i64>,
    pub offsets_topic_segment_bytes: Option<u64>,
    pub producer_id_expiration_ms: Option<i64>,
    pub join: Option<String>,
    pub advertised_raft_addr: Option<String>,
    pub broker_rack: Option<String>,
    pub replica_selector: Option<ReplicaSelector>,
    pub controller_voters_max: Option<usize>,
    pub partition_autobalancing: Option<Autobalancing>,
    pub partition_moves_max: Option<usize>,
    #[serde(default)]
    pub cluster: ClusterSection,
    /// Listeners, TLS, SASL, ACLs, secrets (`crate::security::settings`).
    #[serde(default)]
    pub security: crate::security::settings::SecurityFile,
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
    pub limits: Limits,
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
    /// KIP-848 consumer groups: the heartbeat interval members are told,
    /// how long a silent member stays, the most members of one group
    /// (Kafka's group.consumer.heartbeat.interval.ms, 5000;
    /// .session.timeout.ms, 45000; .max.size, unbounded in Kafka).
    pub group_consumer_heartbeat_interval_ms: u64,
    pub group_consumer_session_timeout_ms: u64,
    pub group_consumer_max_size: usize,
    /// Below this much free space on the data disk the node takes no more
    /// writes (produce, replicated appends) and gives up its leaderships,
    /// so that the disk never fills up under sled.
    pub min_free_disk_bytes: u64,
    /// Memory the storage engine may use to cache pages (sled's cache).
    pub cache_bytes: u64,
    /// Whether leaders are handed back to preferred replicas after failures
    /// heal (Kafka's auto.leader.rebalance.enable), how often each node
    /// looks, and the share of a node's preferred partitions it may not lead
    /// before they are (leader.imbalance.per.broker.percentage).
    pub auto_leader_rebalance_enable: bool,
    pub leader_imbalance_check_interval_ms: u64,
    pub leader_imbalance_per_broker_percentage: u32,
    /// Topics' retention unless they set their own (Kafka's log.retention.*),
    /// and how often a leader applies it.
    pub retention: RetentionDefaults,
    /// The Raft address of a node of a running cluster that this node joins
    /// (it then never initializes the controller group itself).
    pub join: Option<String>,
    /// This node's rack (Kafka's broker.rack): a partition's replicas are
    /// placed in distinct racks, and consumers may read from a replica in
    /// their own (KIP-392).
    pub rack: Option<String>,
    /// Which replica a consumer giving its rack reads from (Kafka's
    /// replica.selector.class): one in its rack (`rack_aware`, default) or
    /// the leader.
    pub replica_selector: ReplicaSelector,
    /// Most voters of the controller group (default 5); other nodes are its
    /// learners. The count stays odd from 3 up, unless a seed list was even.
    pub controller_voters_max: usize,
    /// Whether replicas move onto a node added to the cluster (default
    /// `node_add`, as Redpanda's partition_autobalancing_mode) or not (`off`).
    pub partition_autobalancing: Autobalancing,
    /// Most partition moves the cluster's own balancing and decommissions
    /// keep under way at once (default 8; moves asked by operators are not
    /// counted against it).
    pub partition_moves_max: usize,
    /// Kafka listeners, TLS, SASL, the authorizer, the cluster secret and
    /// the admin API's tokens.
    pub security: crate::security::settings::SecuritySettings,
}

/// A flag's value that is one of an enum's variants, as its TOML value
/// (snake_case) spells it.
macro_rules! flag_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vdoc])* $variant),+ }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                serde_json::from_value(serde_json::Value::String(s.into())).map_err(|e| format!("{s:?}: {e}"))
            }
        }
    };
}

flag_enum!(
    /// See [`NodeConfig::replica_selector`].
    ReplicaSelector { #[default] RackAware, Leader }
);

flag_enum!(
    /// See [`NodeConfig::partition_autobalancing`].
    Autobalancing { Off, #[default] NodeAdd }
);

/// See [`NodeConfig::cache_bytes`]: 256 MiB.
pub const CACHE_BYTES_DEFAULT: u64 = 256 << 20;

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
        if self.security.listeners.is_some() && self.kafka_listen.is_some() {
            return Err(ConfigError::Invalid("kafka_listen and [security] listeners are two ways to say the same: use listeners".into()));
        }
        let kafka_listen = self.kafka_listen.unwrap_or_else(|| format!("0.0.0.0:{adv_port}"));
        let security = self.security.resolve(&kafka_listen, &advertised).map_err(ConfigError::Invalid)?;
        // With listeners, the first is the node's main address.
        let (advertised, kafka_listen) = (security.listeners[0].advertised.clone(), security.listeners[0].listen.clone());
        let (_, kafka_port) = split_host_port(&kafka_listen)?;
        if nodes.is_empty() {
            // Standalone, or joining: peers reach this node's Raft port at
            // the advertised host (or as given), on the port it listens on.
            let (host, _) = split_host_port(&advertised)?;
            let raft_port = match &self.raft_listen {
                Some(l) => split_host_port(l)?.1,
                None => kafka_port + RAFT_PORT_OFFSET,
            };
            let raft_addr = self.advertised_raft_addr.clone().unwrap_or_else(|| with_port(&host, raft_port));
            split_host_port(&raft_addr)?;
            nodes.insert(node_id, NodeAddr { kafka_addr: advertised.clone(), raft_addr });
        } else if self.advertised_raft_addr.is_some() {
            return Err(ConfigError::Invalid("advertised_raft_addr is for a node not listed in [cluster] nodes (standalone or joining); a listed node's raft_addr says it".into()));
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
                "need heartbeat_interval_ms < election_timeout_min_ms < election_timeout_max_ms".into()
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
        let group_consumer_heartbeat_interval_ms = self.group_consumer_heartbeat_interval_ms.unwrap_or(5_000);
        let group_consumer_session_timeout_ms = self.group_consumer_session_timeout_ms.unwrap_or(45_000);
        if !(0 < group_consumer_heartbeat_interval_ms && group_consumer_heartbeat_interval_ms < group_consumer_session_timeout_ms) {
            return Err(ConfigError::Invalid("need 0 < group_consumer_heartbeat_interval_ms < group_consumer_session_timeout_ms".into()));
        }
        let d = Limits::default();
        let limits = Limits {
            frame_bytes_max: self.frame_bytes_max.unwrap_or(d.frame_bytes_max),
            message_max_bytes: self.message_max_bytes.unwrap_or(d.message_max_bytes),
            batch_decompressed_bytes_max: self.batch_decompressed_bytes_max.unwrap_or(d.batch_decompressed_bytes_max),
            fetch_max_bytes: self.fetch_max_bytes.unwrap_or(d.fetch_max_bytes),
            queued_max_request_bytes: self.queued_max_request_bytes.unwrap_or(d.queued_max_request_bytes),
            connection_requests_in_flight_max: self.connection_requests_in_flight_max.unwrap_or(d.connection_requests_in_flight_max),
            max_connections: self.max_connections.unwrap_or(d.max_connections),
            max_connections_per_ip: self.max_connections_per_ip.unwrap_or(d.max_connections_per_ip),
            replication_append_bytes_max: self.replication_append_bytes_max.unwrap_or(d.replication_append_bytes_max),
            replica_lag_time_max_ms: self.replica_lag_time_max_ms.unwrap_or(d.replica_lag_time_max_ms),
            log_cleaner_dedupe_buffer_bytes: self.log_cleaner_dedupe_buffer_bytes.unwrap_or(d.log_cleaner_dedupe_buffer_bytes),
            sasl_server_max_receive_size: self.sasl_server_max_receive_size.unwrap_or(d.sasl_server_max_receive_size),
        };
        limits.check()?;
        let rd = RetentionDefaults::default();
        // Kafka's pairs of `*.ms` and `*.hours` settings: ms wins.
        let ms_or_hours = |ms: Option<i64>, hours: Option<i64>, default: i64| ms.or(hours.map(|h| h.saturating_mul(3_600_000))).unwrap_or(default);
        let retention = RetentionDefaults {
            ms: ms_or_hours(self.log_retention_ms, self.log_retention_hours, rd.ms),
            bytes: self.log_retention_bytes.unwrap_or(rd.bytes),
            check_interval_ms: self.log_retention_check_interval_ms.unwrap_or(rd.check_interval_ms),
            segment_bytes: self.log_segment_bytes.unwrap_or(rd.segment_bytes),
            segment_ms: ms_or_hours(self.log_roll_ms, self.log_roll_hours, rd.segment_ms),
            offsets_segment_bytes: self.offsets_topic_segment_bytes.unwrap_or(rd.offsets_segment_bytes),
            producer_expiration_ms: self.producer_id_expiration_ms.unwrap_or(rd.producer_expiration_ms),
            cleaner_backoff_ms: self.log_cleaner_backoff_ms.unwrap_or(rd.cleaner_backoff_ms).max(1),
            offsets_retention_ms: self.offsets_retention_ms.or(self.offsets_retention_minutes.map(|m| m.saturating_mul(60_000))).unwrap_or(rd.offsets_retention_ms),
            offsets_retention_check_interval_ms: self.offsets_retention_check_interval_ms.unwrap_or(rd.offsets_retention_check_interval_ms).max(1),
        };
        if retention.offsets_retention_ms < 1 {
            return Err(ConfigError::Invalid("offsets_retention_minutes (or offsets_retention_ms) must be at least 1".into()));
        }
        if retention.producer_expiration_ms < 1 {
            return Err(ConfigError::Invalid("producer_id_expiration_ms must be at least 1".into()));
        }
        if retention.ms < -1 || retention.bytes < -1 || retention.check_interval_ms == 0 {
            return Err(ConfigError::Invalid("log_retention_ms and log_retention_bytes must be -1 (unbounded) or more, log_retention_check_interval_ms above 0".into()));
        }
        let join = self.join.filter(|j| !j.is_empty());
        if let Some(j) = &join {
            split_host_port(j)?;
        }
        let controller_voters_max = self.controller_voters_max.unwrap_or(5);
        let partition_moves_max = self.partition_moves_max.unwrap_or(8);
        if controller_voters_max == 0 || partition_moves_max == 0 {
            return Err(ConfigError::Invalid("controller_voters_max and partition_moves_max must be at least 1".into()));
        }
        let segment_bytes_ok = |b: u64| (1 << 20..=i32::MAX as u64).contains(&b);
        if !segment_bytes_ok(retention.segment_bytes) || !segment_bytes_ok(retention.offsets_segment_bytes) || retention.segment_ms < 1 {
            return Err(ConfigError::Invalid("log_segment_bytes and offsets_topic_segment_bytes must be from 1048576 to 2147483647 (Kafka's bounds), log_roll_ms at least 1".into()));
        }
        Ok(NodeConfig {
            auto_leader_rebalance_enable: self.auto_leader_rebalance_enable.unwrap_or(true),
            leader_imbalance_check_interval_ms: self.leader_imbalance_check_interval_ms.unwrap_or(30_000).max(1),
            leader_imbalance_per_broker_percentage: self.leader_imbalance_per_broker_percentage.unwrap_or(10).min(100),
            retention,
            node_id,
            limits,
            offsets_topic_partitions,
            group_initial_rebalance_delay_ms: self.group_initial_rebalance_delay_ms.unwrap_or(3_000),
            group_min_session_timeout_ms,
            group_max_session_timeout_ms,
            group_consumer_heartbeat_interval_ms,
            group_consumer_session_timeout_ms,
            group_consumer_max_size: self.group_consumer_max_size.unwrap_or(10_000).max(1),
            min_free_disk_bytes: self.min_free_disk_bytes.unwrap_or(MIN_FREE_DISK_BYTES_DEFAULT),
            cache_bytes: self.cache_bytes.unwrap_or(CACHE_BYTES_DEFAULT),
            data_dir: self.data_dir.unwrap_or_else(|| PathBuf::from("./data")),
            kafka_listen,
            raft_listen,
            admin_listen,
            nodes,
            auto_create_topics: self.auto_create_topics.unwrap_or(true),
            default_partitions,
            default_replication_factor: self.default_replication_factor,
            heartbeat_interval_ms,
            election_timeout_min_ms,
            election_timeout_max_ms,
            join,
            rack: self.broker_rack.filter(|r| !r.is_empty()),
            replica_selector: self.replica_selector.unwrap_or_default(),
            controller_voters_max,
            partition_autobalancing: self.partition_autobalancing.unwrap_or_default(),
            partition_moves_max,
            security,
        })
    }
}

impl Limits {
    fn check(&self) -> Result<(), ConfigError> {
        let positive = [
            ("frame_bytes_max", self.frame_bytes_max),
            ("message_max_bytes", self.message_max_bytes),
            ("batch_decompressed_bytes_max", self.batch_decompressed_bytes_max),
            ("fetch_max_bytes", self.fetch_max_bytes),
            ("connection_requests_in_flight_max", self.connection_requests_in_flight_max),
            ("max_connections", self.max_connections),
            ("max_connections_per_ip", self.max_connections_per_ip),
            ("replication_append_bytes_max", self.replication_append_bytes_max),
            ("sasl_server_max_receive_size", self.sasl_server_max_receive_size),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(ConfigError::Invalid(format!("{name} must be at least 1")));
        }
        // As Kafka requires: the largest request must fit in the queue.
        if self.queued_max_request_bytes < self.frame_bytes_max {
            return Err(ConfigError::Invalid("queued_max_request_bytes must be at least frame_bytes_max".into()));
        }
        if self.frame_bytes_max < 64 {
            return Err(ConfigError::Invalid("frame_bytes_max must be at least 64".into()));
        }
        Ok(())
    }
}

impl NodeConfig {
    /// The replication factor of a topic created without one, in a cluster
    /// of `nodes` nodes.
    pub fn replication_factor_default(&self, nodes: usize) -> i16 {
        self.default_replication_factor.unwrap_or_else(|| nodes.clamp(1, 3) as i16)
    }

    /// This node's broker configs under Kafka's names, as DescribeConfigs
    /// reports them (with Kafka's default of each, to tell a value the
    /// node's flags set from Kafka's own).
    pub fn broker_configs(&self) -> Vec<StaticBrokerConfig> {
        use ConfigType::{Boolean, Int, List, Long, String as Str};
        let listeners = |addr: fn(&crate::security::listeners::Listener) -> &String| {
            self.security.listeners.iter().map(|l| format!("{}://{}", l.name, addr(l))).collect::<Vec<_>>().join(",")
        };
        let advertised = listeners(|l| &l.advertised);
        let r = &self.retention;
        let l = &self.limits;
        let c = |name: &'static str, value: String, kafka_default: &'static str, kind| StaticBrokerConfig { name, value, kafka_default, kind };
        let mut out = vec![
            c("advertised.listeners", advertised, "", List),
            c("listeners", listeners(|l| &l.listen), "PLAINTEXT://:9092", List),
            c(
                "listener.security.protocol.map",
                self.security.listeners.iter().map(|l| format!("{}:{}", l.name, l.protocol.name())).collect::<Vec<_>>().join(","),
                "",
                List,
            ),
            c("sasl.enabled.mechanisms", self.security.sasl_mechanisms.join(","), "GSSAPI", List),
            c(
                "super.users",
                self.security.authorizer.as_ref().map(|a| a.super_users.iter().cloned().collect::<Vec<_>>().join(";")).unwrap_or_default(),
                "",
                Str,
            ),
            c(
                "allow.everyone.if.no.acl.found",
                self.security.authorizer.as_ref().is_some_and(|a| a.allow_everyone_if_no_acl_found).to_string(),
                "false",
                Boolean,
            ),
            c("connections.max.reauth.ms", self.security.connections_max_reauth_ms.to_string(), "0", Long),
            c("auto.create.topics.enable", self.auto_create_topics.to_string(), "true", Boolean),
            c("auto.leader.rebalance.enable", self.auto_leader_rebalance_enable.to_string(), "true", Boolean),
            c("broker.id", self.node_id.to_string(), "-1", Int),
            c("broker.rack", self.rack.clone().unwrap_or_default(), "", Str),
            c("compression.type", "producer".into(), "producer", Str),
            c("default.replication.factor", self.replication_factor_default(self.nodes.len()).to_string(), "1", Int),
            c("fetch.max.bytes", l.fetch_max_bytes.to_string(), "57671680", Int),
            c("group.consumer.heartbeat.interval.ms", self.group_consumer_heartbeat_interval_ms.to_string(), "5000", Int),
            c("group.consumer.max.size", self.group_consumer_max_size.to_string(), "2147483647", Int),
            c("group.consumer.session.timeout.ms", self.group_consumer_session_timeout_ms.to_string(), "45000", Int),
            c("group.initial.rebalance.delay.ms", self.group_initial_rebalance_delay_ms.to_string(), "3000", Int),
            c("group.max.session.timeout.ms", self.group_max_session_timeout_ms.to_string(), "1800000", Int),
            c("group.min.session.timeout.ms", self.group_min_session_timeout_ms.to_string(), "6000", Int),
            c("leader.imbalance.check.interval.seconds", (self.leader_imbalance_check_interval_ms / 1000).to_string(), "300", Long),
            c("leader.imbalance.per.broker.percentage", self.leader_imbalance_per_broker_percentage.to_string(), "10", Int),
            c("listeners", format!("PLAINTEXT://{}", self.kafka_listen), "PLAINTEXT://:9092", List),
            c("replica.selector.class", match self.replica_selector {
                ReplicaSelector::RackAware => "org.apache.kafka.common.replica.RackAwareReplicaSelector".into(),
                ReplicaSelector::Leader => String::new(),
            }, "", Str),
            c("log.cleaner.backoff.ms", r.cleaner_backoff_ms.to_string(), "15000", Long),
            c("log.cleaner.dedupe.buffer.size", l.log_cleaner_dedupe_buffer_bytes.to_string(), "134217728", Long),
            c("sasl.server.max.receive.size", l.sasl_server_max_receive_size.to_string(), "524288", Int),
            c("log.cleanup.policy", "delete".into(), "delete", List),
            c("log.dirs", self.data_dir.display().to_string(), "/tmp/kafka-logs", Str),
            c("log.retention.bytes", r.bytes.to_string(), "-1", Long),
            c("log.retention.check.interval.ms", r.check_interval_ms.to_string(), "300000", Long),
            c("log.retention.ms", r.ms.to_string(), "604800000", Long),
            c("log.roll.ms", r.segment_ms.to_string(), "604800000", Long),
            c("log.segment.bytes", r.segment_bytes.to_string(), "1073741824", Int),
            c("max.connections", l.max_connections.to_string(), "2147483647", Int),
            c("max.connections.per.ip", l.max_connections_per_ip.to_string(), "2147483647", Int),
            c("message.max.bytes", l.message_max_bytes.to_string(), "1048588", Int),
            c("min.insync.replicas", "1".into(), "1", Int),
            c("node.id", self.node_id.to_string(), "-1", Int),
            c("num.partitions", self.default_partitions.to_string(), "1", Int),
            c("offsets.retention.check.interval.ms", r.offsets_retention_check_interval_ms.to_string(), "600000", Long),
            c("offsets.retention.minutes", (r.offsets_retention_ms / 60_000).to_string(), "10080", Int),
            c("offsets.topic.num.partitions", self.offsets_topic_partitions.to_string(), "50", Int),
            c("offsets.topic.segment.bytes", r.offsets_segment_bytes.to_string(), "104857600", Int),
            c("producer.id.expiration.ms", r.producer_expiration_ms.to_string(), "86400000", Int),
            c("queued.max.request.bytes", l.queued_max_request_bytes.to_string(), "-1", Long),
            c("replica.lag.time.max.ms", l.replica_lag_time_max_ms.to_string(), "30000", Long),
            c("socket.request.max.bytes", l.frame_bytes_max.to_string(), "104857600", Int),
            c("unclean.leader.election.enable", "false".into(), "false", Boolean),
        ];
        // Kafka reports the hours form of the retention and roll settings too.
        if r.ms >= 0 && r.ms % 3_600_000 == 0 {
            out.push(c("log.retention.hours", (r.ms / 3_600_000).to_string(), "168", Int));
        }
        if r.segment_ms % 3_600_000 == 0 {
            out.push(c("log.roll.hours", (r.segment_ms / 3_600_000).to_string(), "168", Int));
        }
        out.sort_by_key(|c| c.name);
        out
    }
}

/// One of a node's broker configs, as DescribeConfigs reports it.
#[derive(Debug, Clone)]
pub struct StaticBrokerConfig {
    pub name: &'static str,
    pub value: String,
    /// Kafka's default: a value equal to it is reported as a default.
    pub kafka_default: &'static str,
    pub kind: ConfigType,
}

/// Kafka's config types, as DescribeConfigs v3+ reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    Boolean = 1,
    String = 2,
    Int = 3,
    Long = 5,
    Double = 6,
    List = 7,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_joining_node_advertises_the_raft_port_it_listens_on() {
        let f = FileConfig { node_id: Some(4), join: Some("n1:9192".into()), advertised_addr: Some("n4:9092".into()), raft_listen: Some("0.0.0.0:7000".into()), ..Default::default() };
        let c = f.resolve().unwrap();
        assert_eq!(c.nodes[&4].raft_addr, "n4:7000");
        assert_eq!(c.join.as_deref(), Some("n1:9192"));
        let f = FileConfig { node_id: Some(4), join: Some("n1:9192".into()), advertised_addr: Some("n4:9092".into()), advertised_raft_addr: Some("gw:8000".into()), ..Default::default() };
        assert_eq!(f.resolve().unwrap().nodes[&4].raft_addr, "gw:8000");
    }

    #[test]
    fn enum_flags_parse_as_toml_spells_them() {
        assert_eq!("node_add".parse::<Autobalancing>(), Ok(Autobalancing::NodeAdd));
        assert_eq!("leader".parse::<ReplicaSelector>(), Ok(ReplicaSelector::Leader));
        assert!("sometimes".parse::<Autobalancing>().unwrap_err().contains("node_add"));
    }

    #[test]
    fn standalone_defaults() {
        let c = FileConfig::default().resolve().unwrap();
        assert_eq!(c.node_id, 1);
        assert_eq!(c.kafka_listen, "0.0.0.0:9092");
        assert_eq!(c.raft_listen, "0.0.0.0:9192");
        assert_eq!(c.admin_listen, "0.0.0.0:9292");
        assert_eq!(c.nodes[&1].kafka_addr, "localhost:9092");
        assert_eq!(c.replication_factor_default(c.nodes.len()), 1);
        assert_eq!(c.limits, Limits::default());
    }

    #[test]
    fn limits_come_from_the_file_and_are_checked() {
        let f: FileConfig = toml::from_str("message_max_bytes = 5000\nmax_connections_per_ip = 3").unwrap();
        let c = f.resolve().unwrap();
        assert_eq!((c.limits.message_max_bytes, c.limits.max_connections_per_ip), (5000, 3));
        let f: FileConfig = toml::from_str("queued_max_request_bytes = 1000").unwrap();
        assert!(matches!(f.resolve(), Err(ConfigError::Invalid(_))));
        let f: FileConfig = toml::from_str("max_connections = 0").unwrap();
        assert!(matches!(f.resolve(), Err(ConfigError::Invalid(_))));
    }

    #[test]
    fn segment_and_producer_settings_resolve_and_are_bounded() {
        let f: FileConfig = toml::from_str("log_roll_hours = 2\nlog_segment_bytes = 2097152\nproducer_id_expiration_ms = 5000").unwrap();
        let r = f.resolve().unwrap().retention;
        assert_eq!((r.segment_ms, r.segment_bytes, r.producer_expiration_ms), (7_200_000, 2 << 20, 5000));
        assert_eq!(r.offsets_segment_bytes, 100 << 20);
        let f: FileConfig = toml::from_str("log_roll_ms = 10\nlog_roll_hours = 2").unwrap();
        assert_eq!(f.resolve().unwrap().retention.segment_ms, 10, "ms wins over hours, as in Kafka");
        for bad in ["log_segment_bytes = 1000", "offsets_topic_segment_bytes = 3000000000", "log_roll_ms = 0", "producer_id_expiration_ms = 0"] {
            assert!(toml::from_str::<FileConfig>(bad).unwrap().resolve().is_err(), "{bad} accepted");
        }
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
        assert_eq!(c.replication_factor_default(c.nodes.len()), 3);
    }

    #[test]
    fn rejects_unknown_fields_and_nodes() {
        assert!(toml::from_str::<FileConfig>("nodeid = 1").is_err());
        let f = FileConfig { node_id: Some(9), cluster: ClusterSection { nodes: vec![ClusterNode { id: 1, kafka_addr: "a:1".into(), raft_addr: None }] }, ..Default::default() };
        assert!(matches!(f.resolve(), Err(ConfigError::UnknownNode(9))));
    }
}
