//! Cluster metadata: what the controller group (group 0) replicates. Applying a
//! [`ControllerCommand`] is deterministic, so every replica computes the same
//! placement and the same group ids.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::cluster::dynamic_config::{self, BrokerConfigs, ConfigChangeError, ConfigOp, ConfigResource, EffectiveConfigs};
use crate::cluster::topic_config;
use crate::{GroupId, NodeAddr, NodeId, TopicPartition};

/// Longest topic name Kafka accepts.
pub const TOPIC_NAME_LEN_MAX: usize = 249;
/// Most partitions one topic may have (a bound on one CreateTopics request).
pub const TOPIC_PARTITIONS_MAX: i32 = 10_000;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ControllerCommand {
    /// Sets the cluster's nodes (from the cluster config).
    SetNodes(BTreeMap<NodeId, NodeAddr>),
    CreateTopic {
        name: String,
        partitions: i32,
        replication_factor: i16,
        configs: BTreeMap<String, String>,
    },
    DeleteTopic {
        name: String,
    },
    /// Hands node `node` the next block of producer ids.
    AllocateProducerIds {
        node: NodeId,
    },
    /// A topic whose replicas are given (CreateTopics with an assignment):
    /// partition i's replicas, the first the preferred leader. (A variant of
    /// its own, so that entries logged before it still decode.)
    CreateTopicAssigned {
        name: String,
        assignment: Vec<Vec<NodeId>>,
        configs: BTreeMap<String, String>,
    },
    /// Changes a topic's configs or dynamic broker configs
    /// (IncrementalAlterConfigs; AlterConfigs with `replace`).
    AlterConfigs {
        resource: ConfigResource,
        ops: Vec<ConfigOp>,
        replace: bool,
    },
    /// Grows a topic to `count` partitions (CreatePartitions): the new ones
    /// placed round-robin after the topic's own (or as `assignment` gives,
    /// one replica list per new partition), each a new Raft group.
    CreatePartitions {
        name: String,
        count: i32,
        assignment: Option<Vec<Vec<NodeId>>>,
    },
    /// Starts, changes or cancels partition moves
    /// (AlterPartitionReassignments): per partition, its target replicas,
    /// or None to cancel a move in progress (it moves back to where it
    /// was). The partitions' leaders carry the moves out
    /// (`crate::cluster::moves`).
    Reassign {
        moves: Vec<(TopicPartition, Option<Vec<NodeId>>)>,
    },
    /// A partition's Raft group has reached its move's target (proposed by
    /// its leader): the move is over.
    CompleteReassignment {
        tp: TopicPartition,
        group: GroupId,
        replicas: Vec<NodeId>,
    },
    /// A node says where it is reached: on a join (a new node), or at a
    /// start with a changed address. Refused for a removed node.
    RegisterNode {
        node: NodeId,
        addr: NodeAddr,
        rack: Option<String>,
    },
    /// Starts moving every replica off `node` (`crate::cluster::membership`); no new
    /// replica is placed there meanwhile. Refused if the other nodes could
    /// not hold its partitions.
    Decommission {
        node: NodeId,
    },
    /// Stops a decommission (the replicas moved away stay where they went).
    Recommission {
        node: NodeId,
    },
    /// A decommissioned node that hosts nothing leaves the cluster for good
    /// (its id is never taken again).
    RemoveNode {
        node: NodeId,
    },
    /// The replica balancer has filled node `node`, added to the cluster.
    BalancedOnto {
        node: NodeId,
    },
    /// Names the cluster (Kafka's cluster id), once: proposed with a random
    /// id by the first controller leader that finds it unset.
    SetClusterId(u128),
    /// A node's Kafka listeners as clients are told them (listener name ->
    /// host:port); Metadata answers each client with its listener's.
    SetListeners {
        node: NodeId,
        listeners: BTreeMap<String, String>,
    },
    /// Users' SCRAM credentials and the ACLs (`crate::security`).
    Security(crate::security::SecurityCommand),
}

/// A topic's id (Kafka's topic UUID): the same on every replica (a hash of
/// the cluster id, the topic's first group id and its name), unique in a
/// cluster (group ids are never reused, so a topic created again gets
/// another) and across clusters (the cluster id is random). Shaped as a
/// version-4 UUID; never Kafka's reserved ids (zero, one) nor one whose
/// base64 starts with '-' (Kafka's tools would read it as an option).
pub fn topic_id(cluster_id: u128, first_group: u64, name: &str) -> u128 {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(b"chronik topic id\0");
    h.update(cluster_id.to_be_bytes());
    h.update(first_group.to_be_bytes());
    h.update(name.as_bytes());
    let digest = h.finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest[..16]);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    if b[0] >> 2 == 62 {
        b[0] ^= 0x80;
    }
    u128::from_be_bytes(b)
}

/// Kafka's text form of a UUID (topic and cluster ids): URL-safe base64
/// without padding, 22 characters.
pub fn uuid_text(id: u128) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id.to_be_bytes())
}

/// Producer ids a node gets at a time (InitProducerId hands them out).
pub const PRODUCER_ID_BLOCK: i64 = 1000;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ControllerError {
    #[error("topic {0} already exists")]
    TopicExists(String),
    #[error("topic {0} does not exist")]
    UnknownTopic(String),
    #[error("invalid topic name {0:?}: {1}")]
    InvalidTopic(String, String),
    #[error("invalid partition count {0}: {1}")]
    InvalidPartitions(i32, String),
    #[error("invalid replication factor {0}: the cluster has {1} nodes")]
    InvalidReplicationFactor(i16, usize),
    #[error("invalid replica assignment: {0}")]
    InvalidReplicaAssignment(String),
    #[error("{0}: the replication factor would change from {1} to {2} (not allowed by the request)")]
    ReplicationFactorChange(TopicPartition, usize, usize),
    #[error(transparent)]
    InvalidConfig(#[from] ConfigChangeError),
    #[error("no reassignment of {0} is in progress")]
    NoReassignmentInProgress(TopicPartition),
    #[error("unknown partition {0}")]
    UnknownPartition(TopicPartition),
    #[error("node {0} is not a node of this cluster")]
    UnknownNode(NodeId),
    #[error("node {0} was removed from the cluster; a node that joins needs a new id")]
    NodeRemoved(NodeId),
    #[error("node {0} cannot be decommissioned: {1}")]
    CannotDecommission(NodeId, String),
    #[error("node {0} still hosts {1} replicas (or is in a move's original replicas)")]
    NodeNotEmpty(NodeId, usize),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionAssignment {
    pub group: GroupId,
    /// The nodes that host the partition's replicas, the first the
    /// preferred leader. While it moves: the target's replicas, then those
    /// still to leave (as Kafka lists them).
    pub replicas: Vec<NodeId>,
    /// A move in progress.
    #[serde(default)]
    pub reassignment: Option<Reassignment>,
}

/// A partition on the move (see `crate::cluster::moves`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reassignment {
    /// Where it goes.
    pub target: Vec<NodeId>,
    /// Where it was when the move started (a cancel moves it back there).
    pub original: Vec<NodeId>,
}

impl PartitionAssignment {
    pub fn new(group: GroupId, replicas: Vec<NodeId>) -> Self {
        Self { group, replicas, reassignment: None }
    }

    /// Replicas that join in the move in progress (none without one).
    pub fn adding(&self) -> Vec<NodeId> {
        let Some(r) = &self.reassignment else { return vec![];
        };
        r.target.iter().filter(|n| !r.original.contains(n)).copied().collect()
    }

    /// Replicas that leave in the move in progress (none without one).
    pub fn removing(&self) -> Vec<NodeId> {
        let Some(r) = &self.reassignment else { return vec![];
        };
        self.replicas.iter().filter(|n| !r.target.contains(n)).copied().collect()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicMeta {
    pub name: String,
    /// Stable id (Kafka topic ids are UUIDs): derived from the first group id.
    pub id: u128,
    pub partitions: Vec<PartitionAssignment>,
    pub configs: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterMetadata {
    pub nodes: BTreeMap<NodeId, NodeAddr>,
    pub topics: BTreeMap<String, TopicMeta>,
    /// Next partition group id; 0 is the controller.
    pub next_group: u64,
    /// Where the next topic's round-robin placement starts.
    pub next_placement: u64,
    /// The first producer id not handed out yet.
    pub next_producer_id: i64,
    /// The start of the producer id block each node got last.
    pub producer_id_blocks: BTreeMap<NodeId, i64>,
    /// Dynamic broker configs (topic defaults), per node and cluster-wide.
    #[serde(default, with = "dynamic_config::as_pairs")]
    pub broker_configs: BrokerConfigs,
    /// Nodes being decommissioned: their replicas move away, none is placed
    /// on them.
    #[serde(default)]
    pub draining: BTreeSet<NodeId>,
    /// Nodes that left the cluster: their ids are never taken again.
    #[serde(default)]
    pub removed: BTreeSet<NodeId>,
    /// Nodes added to the cluster that the replica balancer has not filled
    /// yet (`crate::cluster::membership`).
    #[serde(default)]
    pub balance_onto: BTreeSet<NodeId>,
    /// Each node's rack (Kafka's broker.rack), for those that have one.
    #[serde(default)]
    pub racks: BTreeMap<NodeId, String>,
    /// Kafka's cluster id; None until the first controller leader names it.
    #[serde(default)]
    pub cluster_id: Option<u128>,
    /// Each node's Kafka listeners (name -> advertised host:port); a node
    /// without any is reached at its `kafka_addr` on every listener.
    #[serde(default)]
    pub listeners: BTreeMap<NodeId, BTreeMap<String, String>>,
    /// SCRAM credentials and ACLs.
    #[serde(default)]
    pub security: std::sync::Arc<crate::security::SecurityState>,
}

impl ClusterMetadata {
    pub fn apply(&mut self, cmd: &ControllerCommand) -> Result<(), ControllerError> {
        match cmd {
            ControllerCommand::SetNodes(nodes) => {
                self.nodes = nodes.clone();
                Ok(())
            }
            ControllerCommand::CreateTopic { name, partitions, replication_factor, configs } => {
                validate_topic_name(name)?;
                if self.topics.contains_key(name) {
                    return Err(ControllerError::TopicExists(name.clone()));
                }
                let assignments = self.place(*partitions, *replication_factor)?;
                self.add_topic(name, assignments, configs);
                Ok(())
            }
            ControllerCommand::CreateTopicAssigned { name, assignment, configs } => {
                validate_topic_name(name)?;
                if self.topics.contains_key(name) {
                    return Err(ControllerError::TopicExists(name.clone()));
                }
                let assignments = self.assign(assignment)?;
                self.add_topic(name, assignments, configs);
                Ok(())
            }
            ControllerCommand::DeleteTopic { name } => self.topics.remove(name).map(|_| ()).ok_or_else(|| ControllerError::UnknownTopic(name.clone())),
            ControllerCommand::AllocateProducerIds { node } => {
                self.producer_id_blocks.insert(*node, self.next_producer_id);
                self.next_producer_id += PRODUCER_ID_BLOCK;
                Ok(())
            }
            ControllerCommand::CreatePartitions { name, count, assignment } => {
                let added = self.new_partitions(name, *count, assignment.as_deref())?;
                self.topics.get_mut(name).expect("checked above").partitions.extend(added);
                Ok(())
            }
            ControllerCommand::Reassign { moves } => {
                let changed = self.reassigned(moves)?;
                for (tp, a) in changed {
                    self.topics.get_mut(&*tp.topic).expect("checked").partitions[tp.partition as usize] = a;
                }
                Ok(())
            }
            ControllerCommand::CompleteReassignment { tp, group, replicas } => {
                let a = self.partition_mut(tp).filter(|a| a.group == *group).ok_or_else(|| ControllerError::UnknownPartition(tp.clone()))?;
                match &a.reassignment {
                    // The move's target changed meanwhile: its leader goes on.
                    Some(r) if r.target != *replicas => Err(ControllerError::InvalidReplicaAssignment(format!("{tp} now moves to {:?}", r.target))),
                    Some(_) => {
                        *a = PartitionAssignment::new(*group, replicas.clone());
                        Ok(())
                    }
                    None => Err(ControllerError::NoReassignmentInProgress(tp.clone())),
                }
            }
            ControllerCommand::RegisterNode { node, addr, rack } => {
                if self.removed.contains(node) {
                    return Err(ControllerError::NodeRemoved(*node));
                }
                if self.nodes.insert(*node, addr.clone()).is_none() && self.nodes.len() > 1 {
                    self.balance_onto.insert(*node);
                }
                match rack {
                    Some(r) => self.racks.insert(*node, r.clone()),
                    None => self.racks.remove(node),
                };
                Ok(())
            }
            ControllerCommand::Decommission { node } => {
                self.check_decommission(*node)?;
                self.draining.insert(*node);
                Ok(())
            }
            ControllerCommand::Recommission { node } => {
                if !self.nodes.contains_key(node) {
                    return Err(ControllerError::UnknownNode(*node));
                }
                self.draining.remove(node);
                Ok(())
            }
            ControllerCommand::RemoveNode { node } => {
                if !self.nodes.contains_key(node) {
                    return Err(ControllerError::UnknownNode(*node));
                }
                if !self.draining.contains(node) {
                    return Err(ControllerError::CannotDecommission(*node, "it is not being decommissioned".into()));
                }
                let hosted = self.hosted_by(*node);
                if hosted > 0 {
                    return Err(ControllerError::NodeNotEmpty(*node, hosted));
                }
                self.nodes.remove(node);
                self.draining.remove(node);
                self.listeners.remove(node);
                self.balance_onto.remove(node);
                self.broker_configs.remove(&Some(*node));
                self.racks.remove(node);
                self.removed.insert(*node);
                Ok(())
            }
            ControllerCommand::BalancedOnto { node } => {
                self.balance_onto.remove(node);
                Ok(())
            }
            ControllerCommand::SetClusterId(id) => {
                // The first one proposed stands (two leaders may both propose).
                self.cluster_id.get_or_insert(*id);
                Ok(())
            }
            ControllerCommand::SetListeners { node, listeners } => {
                if self.removed.contains(node) {
                    return Err(ControllerError::NodeRemoved(*node));
                }
                self.listeners.insert(*node, listeners.clone());
                Ok(())
            }
            ControllerCommand::Security(cmd) => {
                std::sync::Arc::make_mut(&mut self.security).apply(cmd);
                Ok(())
            }
            ControllerCommand::AlterConfigs { resource, ops, replace } => {
                let changed = self.altered_configs(resource, ops, *replace)?;
                match resource {
                    ConfigResource::Topic(name) => self.topics.get_mut(name).expect("checked above").configs = changed,
                    ConfigResource::Broker(node) if changed.is_empty() => {
                        self.broker_configs.remove(node);
                    }
                    ConfigResource::Broker(node) => {
                        self.broker_configs.insert(*node, changed);
                    }
                }
                Ok(())
            }
        }
    }

    /// The partitions topic `name` would gain to have `count`, checked as
    /// Kafka checks CreatePartitions: more than it has, within the bound, and
    /// a given assignment (one replica list per new partition) as a
    /// topic's. Round-robin placement continues the topic's own: partition p
    /// starts at the node after the one partition p-1 starts at. Takes the
    /// new group ids (call on a copy to check without changing).
    pub fn new_partitions(&mut self, name: &str, count: i32, assignment: Option<&[Vec<NodeId>]>) -> Result<Vec<PartitionAssignment>, ControllerError> {
        let topic = self.topics.get(name).ok_or_else(|| ControllerError::UnknownTopic(name.to_string()))?;
        let have = topic.partitions.len() as i32;
        if count <= have {
            return Err(ControllerError::InvalidPartitions(count, format!("topic {name} has {have} partitions; the count can only grow")));
        }
        if count > TOPIC_PARTITIONS_MAX {
            return Err(ControllerError::InvalidPartitions(count, format!("at most {TOPIC_PARTITIONS_MAX}")));
        }
        let rf = topic.partitions[0].replicas.len();
        let first = topic.partitions[0].replicas[0];
        match assignment {
            Some(a) => {
                if a.len() != (count - have) as usize {
                    return Err(ControllerError::InvalidReplicaAssignment(format!("{} replica lists for {} new partitions", a.len(), count - have)));
                }
                if let Some(r) = a.iter().find(|r| r.len() != rf) {
                    return Err(ControllerError::InvalidReplicaAssignment(format!("{r:?}: the topic's partitions have {rf} replicas")));
                }
                self.assign(a)
            }
            None => {
                let nodes = self.placement_order();
                if rf > nodes.len() {
                    return Err(ControllerError::InvalidReplicationFactor(rf as i16, nodes.len()));
                }
                let start = nodes.iter().position(|n| *n == first).unwrap_or(0);
                Ok((have..count)
                    .map(|p| {
                        self.next_group += 1;
                        let replicas = self.replicas_from(&nodes, start + p as usize, rf);
                        PartitionAssignment::new(GroupId(self.next_group), replicas)
                    })
                    .collect())
            }
        }
    }

    /// The assignments `moves` would give their partitions, checked as
    /// Kafka checks AlterPartitionReassignments: known partitions, targets
    /// of distinct known nodes, a cancel only of a move in progress. A move
    /// to where the partition is, with none in progress, changes nothing.
    pub fn reassigned(&self, moves: &[(TopicPartition, Option<Vec<NodeId>>)]) -> Result<Vec<(TopicPartition, PartitionAssignment)>, ControllerError> {
        let mut out = Vec::new();
        for (tp, target) in moves {
            let a = self.partition(tp).ok_or_else(|| ControllerError::UnknownPartition(tp.clone()))?;
            let target = match (target, &a.reassignment) {
                (Some(t), _) => {
                    let distinct = t.iter().enumerate().all(|(i, n)| !t[..i].contains(n));
                    if t.is_empty() || !distinct || t.iter().any(|n| !self.nodes.contains_key(n)) {
                        return Err(ControllerError::InvalidReplicaAssignment(format!("{tp}: {t:?} (replicas must be distinct nodes of this cluster)")));
                    }
                    if let Some(n) = t.iter().find(|n| self.draining.contains(n) && !a.replicas.contains(n)) {
                        return Err(ControllerError::InvalidReplicaAssignment(format!("{tp}: {t:?} (node {n} is being decommissioned)")));
                    }
                    t.clone()
                }
                (None, Some(r)) => r.original.clone(),
                (None, None) => return Err(ControllerError::NoReassignmentInProgress(tp.clone())),
            };
            let original = a.reassignment.as_ref().map_or(&a.replicas, |r| &r.original).clone();
            let mut next = PartitionAssignment::new(a.group, target.clone());
            if a.reassignment.is_some() || target != a.replicas {
                next.replicas.extend(a.replicas.iter().filter(|n| !target.contains(n)));
                next.reassignment = Some(Reassignment { target, original });
            }
            out.push((tp.clone(), next));
        }
        Ok(out)
    }

    /// The configs `resource` would have after `ops`, checked as Kafka
    /// checks them (and as CreateTopics does, for a topic).
    pub fn altered_configs(&self, resource: &ConfigResource, ops: &[ConfigOp], replace: bool) -> Result<BTreeMap<String, String>, ControllerError> {
        match resource {
            ConfigResource::Topic(name) => {
                let topic = self.topics.get(name).ok_or_else(|| ControllerError::UnknownTopic(name.clone()))?;
                let out = dynamic_config::apply_ops(&topic.configs, ops, replace, dynamic_config::check_topic_config, dynamic_config::is_topic_list, resource)?;
                topic_config::validate_all(&out).map_err(|(key, value, reason)| ConfigChangeError::Invalid { resource: resource.to_string(), key, value, reason })?;
                Ok(out)
            }
            ConfigResource::Broker(node) => {
                if let Some(n) = node.filter(|n| !self.nodes.contains_key(n)) {
                    return Err(ConfigChangeError::Request(format!("broker {n} is not a node of this cluster")).into());
                }
                let current = self.broker_configs.get(node).cloned().unwrap_or_default();
                Ok(dynamic_config::apply_ops(&current, ops, replace, dynamic_config::check_broker_config, dynamic_config::is_broker_list, resource)?)
            }
        }
    }

    fn add_topic(&mut self, name: &str, partitions: Vec<PartitionAssignment>, configs: &BTreeMap<String, String>) {
        let id = topic_id(self.cluster_id.unwrap_or(0), self.next_group, name);
        self.topics.insert(name.to_string(), TopicMeta { name: name.to_string(), id, partitions, configs: configs.clone() });
    }

    /// A given placement, checked against the cluster's nodes (the broker
    /// has checked liveness before proposing it).
    fn assign(&mut self, replicas: &[Vec<NodeId>]) -> Result<Vec<PartitionAssignment>, ControllerError> {
        if replicas.is_empty() || replicas.len() > TOPIC_PARTITIONS_MAX as usize {
            return Err(ControllerError::InvalidPartitions(i32::try_from(replicas.len()).unwrap_or(i32::MAX), format!("must be 1..={TOPIC_PARTITIONS_MAX}")));
        }
        let rf = replicas[0].len();
        for (p, r) in replicas.iter().enumerate() {
            let distinct = r.iter().enumerate().all(|(i, n)| !r[..i].contains(n));
            if r.len() != rf || rf == 0 || !distinct || r.iter().any(|n| !self.nodes.contains_key(n)) {
                return Err(ControllerError::InvalidReplicaAssignment(format!("partition {p}: {r:?}")));
            }
        }
        Ok(replicas
            .iter()
            .map(|r| {
                self.next_group += 1;
                PartitionAssignment::new(GroupId(self.next_group), r.clone())
            })
            .collect())
    }

    /// Round-robin placement: partition p's replicas are the `rf` nodes that
    /// follow position `start + p` in node-id order, so leaders (the first
    /// replica) and replicas spread evenly, and consecutive topics start on
    /// different nodes.
    fn place(&mut self, partitions: i32, rf: i16) -> Result<Vec<PartitionAssignment>, ControllerError> {
        if !(1..=TOPIC_PARTITIONS_MAX).contains(&partitions) {
            return Err(ControllerError::InvalidPartitions(partitions, format!("must be 1..={TOPIC_PARTITIONS_MAX}")));
        }
        let nodes = self.placement_order();
        if rf < 1 || rf as usize > nodes.len() {
            return Err(ControllerError::InvalidReplicationFactor(rf, nodes.len()));
        }
        let start = self.next_placement as usize;
        self.next_placement += 1;
        let out = (0..partitions as usize)
            .map(|p| {
                self.next_group += 1;
                let replicas = self.replicas_from(&nodes, start + p, rf as usize);
                PartitionAssignment::new(GroupId(self.next_group), replicas)
            })
            .collect();
        Ok(out)
    }

    /// The nodes new replicas may go to, in placement order: by id, or, when
    /// nodes have racks, alternating between racks (as Kafka's rack-aware
    /// assignment orders brokers), so that neighbours are in distinct racks.
    pub fn placement_order(&self) -> Vec<NodeId> {
        let nodes = self.placeable();
        if self.racks.is_empty() {
            return nodes;
        }
        let mut by_rack: BTreeMap<&str, Vec<NodeId>> = BTreeMap::new();
        for n in &nodes {
            by_rack.entry(self.rack_of(*n)).or_default().push(*n);
        }
        let deepest = by_rack.values().map(Vec::len).max().unwrap_or(0);
        (0..deepest).flat_map(|i| by_rack.values().filter_map(move |r| r.get(i).copied())).collect()
    }

    /// Node `n`'s rack ("" without one).
    pub fn rack_of(&self, n: NodeId) -> &str {
        self.racks.get(&n).map_or("", String::as_str)
    }

    /// `rf` replicas starting at position `start` of `order`: each next one
    /// the first node after the last in a rack not used yet, then (when
    /// racks run out) the next nodes in order. Without racks: `rf`
    /// consecutive nodes.
    fn replicas_from(&self, order: &[NodeId], start: usize, rf: usize) -> Vec<NodeId> {
        let walk: Vec<NodeId> = (0..order.len()).map(|i| order[(start + i) % order.len()]).collect();
        let mut out: Vec<NodeId> = Vec::with_capacity(rf);
        for n in &walk {
            if out.len() < rf && !out.iter().any(|o| !self.rack_of(*o).is_empty() && self.rack_of(*o) == self.rack_of(*n)) {
                out.push(*n);
            }
        }
        for n in &walk {
            if out.len() < rf && !out.contains(n) {
                out.push(*n);
            }
        }
        out
    }

    /// The nodes new replicas may go to (not being decommissioned), in id order.
    pub fn placeable(&self) -> Vec<NodeId> {
        self.nodes.keys().filter(|n| !self.draining.contains(n)).copied().collect()
    }

    /// How many partitions list `node` among their replicas or a move's
    /// original replicas (a cancel would move back there).
    pub fn hosted_by(&self, node: NodeId) -> usize {
        self.partitions()
            .filter(|(_, a)| a.replicas.contains(&node) || a.reassignment.as_ref().is_some_and(|r| r.original.contains(&node)))
            .count()
    }

    /// Whether the nodes other than `node` (and not being decommissioned)
    /// could hold every partition it hosts.
    fn check_decommission(&self, node: NodeId) -> Result<(), ControllerError> {
        if !self.nodes.contains_key(&node) {
            return Err(ControllerError::UnknownNode(node));
        }
        let others = self.placeable().into_iter().filter(|n| *n != node).count();
        let widest = self
            .partitions()
            .filter(|(_, a)| a.replicas.contains(&node))
            .map(|(_, a)| a.reassignment.as_ref().map_or(a.replicas.len(), |r| r.target.len()))
            .max()
            .unwrap_or(0);
        if others == 0 {
            return Err(ControllerError::CannotDecommission(node, "it is the last node".into()));
        }
        if widest > others {
            return Err(ControllerError::CannotDecommission(
                node,
                format!("it hosts a partition with {widest} replicas and only {others} other nodes would remain; add a node or lower the replication factor first"),
            ));
        }
        Ok(())
    }

    /// A topic's configs as they apply on `node`: its own, over the dynamic
    /// broker defaults.
    pub fn effective_configs(&self, topic: &str, node: NodeId) -> Option<EffectiveConfigs<'_>> {
        self.topics.get(topic).map(|t| EffectiveConfigs::new(&t.configs, &self.broker_configs, node))
    }

    pub fn partition(&self, tp: &TopicPartition) -> Option<&PartitionAssignment> {
        self.topics.get(&*tp.topic)?.partitions.get(usize::try_from(tp.partition).ok()?)
    }

    fn partition_mut(&mut self, tp: &TopicPartition) -> Option<&mut PartitionAssignment> {
        self.topics.get_mut(&*tp.topic)?.partitions.get_mut(usize::try_from(tp.partition).ok()?)
    }

    /// Every partition with its assignment.
    pub fn partitions(&self) -> impl Iterator<Item = (TopicPartition, &PartitionAssignment)> {
        self.topics.values().flat_map(|t| t.partitions.iter().enumerate().map(move |(i, a)| (TopicPartition::new(t.name.as_str(), i as i32), a)))
    }
}

/// Kafka's rules: 1..=249 characters of `[a-zA-Z0-9._-]`, not "." or "..".
pub fn validate_topic_name(name: &str) -> Result<(), ControllerError> {
    let bad = |why: &str| Err(ControllerError::InvalidTopic(name.to_string(), why.to_string()));
    if name.is_empty() {
        return bad("empty");
    }
    if name == "." || name == ".." {
        return bad("'.' and '..' are reserved");
    }
    if name.len() > TOPIC_NAME_LEN_MAX {
        return bad("longer than 249 characters");
    }
    if !name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'.' || c == b'_' || c == b'-') {
        return bad("only ASCII letters, digits, '.', '_' and '-' are allowed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(n: u64) -> ClusterMetadata {
        let mut m = ClusterMetadata::default();
        let nodes = (1..=n).map(|i| (i, NodeAddr::default())).collect();
        m.apply(&ControllerCommand::SetNodes(nodes)).unwrap();
        m
    }

    fn create(m: &mut ClusterMetadata, name: &str, partitions: i32, rf: i16) -> Result<(), ControllerError> {
        m.apply(&ControllerCommand::CreateTopic {
            name: name.into(),
            partitions,
            replication_factor: rf,
            configs: Default::default()
        })
    }

    #[test]
    fn replicas_go_to_distinct_racks() {
        // Racks a: 1, 2, 3; b: 4; c: 5, 6 (uneven on purpose).
        let mut m = cluster(6);
        for (n, r) in [(1, "a"), (2, "a"), (3, "a"), (4, "b"), (5, "c"), (6, "c")] {
            m.apply(&ControllerCommand::RegisterNode { node: n, addr: NodeAddr::default(), rack: Some(r.into()) }).unwrap();
        }
        assert_eq!(m.placement_order(), vec![1, 4, 5, 2, 6, 3]);
        create(&mut m, "t", 12, 3).unwrap();
        let mut leaders = BTreeMap::new();
        for a in &m.topics["t"].partitions {
            let racks: BTreeSet<&str> = a.replicas.iter().map(|n| m.rack_of(*n)).collect();
            assert_eq!(racks.len(), 3, "{:?} in racks {racks:?}", a.replicas);
            *leaders.entry(a.replicas[0]).or_insert(0) += 1;
        }
        assert_eq!(leaders.len(), 6, "preferred leaders on every node: {leaders:?}");
        // More replicas than racks: distinct racks first, then any node.
        create(&mut m, "wide", 1, 4).unwrap();
        let r = &m.topics["wide"].partitions[0].replicas;
        let racks: BTreeSet<&str> = r.iter().map(|n| m.rack_of(*n)).collect();
        assert_eq!((r.len(), racks.len()), (4, 3), "{r:?}");
        // A node without a rack conflicts with none.
        m.apply(&ControllerCommand::RegisterNode { node: 6, addr: NodeAddr::default(), rack: None }).unwrap();
        assert_eq!(m.rack_of(6), "");
    }

    #[test]
    fn topic_ids_are_stable_unique_and_shaped_as_kafka_wants() {
        let mut m = cluster(3);
        m.apply(&ControllerCommand::SetClusterId(7)).unwrap();
        m.apply(&ControllerCommand::SetClusterId(8)).unwrap();
        assert_eq!(m.cluster_id, Some(7), "the first cluster id stands");
        create(&mut m, "a", 2, 1).unwrap();
        let first = m.topics["a"].id;
        // The same on every replica: a function of what the log says.
        let mut again = cluster(3);
        again.apply(&ControllerCommand::SetClusterId(7)).unwrap();
        create(&mut again, "a", 2, 1).unwrap();
        assert_eq!(again.topics["a"].id, first);
        // Created again under the same name: another id.
        m.apply(&ControllerCommand::DeleteTopic { name: "a".into() }).unwrap();
        create(&mut m, "a", 2, 1).unwrap();
        assert_ne!(m.topics["a"].id, first);
        // Another cluster: another id.
        assert_ne!(topic_id(8, 2, "a"), topic_id(7, 2, "a"));
        let mut seen = BTreeSet::new();
        for g in 0..5000u64 {
            let id = topic_id(7, g, "t");
            let b = id.to_be_bytes();
            assert_eq!(b[6] >> 4, 4, "version 4");
            assert_eq!(b[8] >> 6, 2, "RFC 4122 variant");
            assert!(id > 1, "not Kafka's reserved ids");
            assert!(!uuid_text(id).starts_with('-'), "{}", uuid_text(id));
            assert_eq!(uuid_text(id).len(), 22);
            assert!(seen.insert(id));
        }
    }

    #[test]
    fn placement_is_round_robin_and_groups_unique() {
        let mut m = cluster(3);
        create(&mut m, "a", 4, 3).unwrap();
        create(&mut m, "b", 2, 1).unwrap();
        let a: Vec<_> = m.topics["a"].partitions.iter().map(|p| p.replicas.clone()).collect();
        assert_eq!(a, vec![vec![1, 2, 3], vec![2, 3, 1], vec![3, 1, 2], vec![1, 2, 3]]);
        let b: Vec<_> = m.topics["b"].partitions.iter().map(|p| p.replicas.clone()).collect();
        assert_eq!(b, vec![vec![2], vec![3]], "next topic starts one node further");
        let mut groups: Vec<_> = m.partitions().map(|(_, a)| a.group).collect();
        groups.dedup();
        assert_eq!(groups.len(), 6);
        assert!(!groups.contains(&crate::CONTROLLER_GROUP));
    }

    #[test]
    fn a_given_assignment_is_kept_and_checked() {
        let mut m = cluster(3);
        let assigned = |m: &mut ClusterMetadata, name: &str, a: Vec<Vec<NodeId>>| {
            m.apply(&ControllerCommand::CreateTopicAssigned { name: name.into(), assignment: a, configs: Default::default() })
        };
        assigned(&mut m, "m", vec![vec![3, 1], vec![2, 3]]).unwrap();
        let r: Vec<_> = m.topics["m"].partitions.iter().map(|p| p.replicas.clone()).collect();
        assert_eq!(r, vec![vec![3, 1], vec![2, 3]]);
        for bad in [vec![vec![1, 1]], vec![vec![1, 2], vec![3]], vec![vec![4]], vec![vec![]], vec![]] {
            assert!(assigned(&mut m, "n", bad.clone()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn partitions_are_added_round_robin_after_the_topics_own() {
        let mut m = cluster(3);
        create(&mut m, "t", 2, 2).unwrap();
        let before: Vec<_> = m.topics["t"].partitions.iter().map(|p| p.replicas.clone()).collect();
        m.apply(&ControllerCommand::CreatePartitions { name: "t".into(), count: 5, assignment: None }).unwrap();
        let after: Vec<_> = m.topics["t"].partitions.iter().map(|p| p.replicas.clone()).collect();
        assert_eq!(&after[..2], &before[..], "existing partitions stay where they are");
        let first = m.topics["t"].partitions[0].replicas[0] as usize - 1;
        for (p, r) in after.iter().enumerate() {
            assert_eq!(r[0] as usize - 1, (first + p) % 3, "partition {p}");
            assert_eq!(r.len(), 2);
        }
        let groups: std::collections::BTreeSet<_> = m.partitions().map(|(_, a)| a.group).collect();
        assert_eq!(groups.len(), 5, "each new partition is a new group");
        m.apply(&ControllerCommand::CreatePartitions { name: "t".into(), count: 6, assignment: Some(vec![vec![3, 1]]) }).unwrap();
        assert_eq!(m.topics["t"].partitions[5].replicas, vec![3, 1]);
        let before = m.clone();
        for (count, assignment) in [(6, None), (4, None), (7, Some(vec![vec![1]])), (7, Some(vec![vec![1, 9]])), (8, Some(vec![vec![1, 2]]))] {
            assert!(m.apply(&ControllerCommand::CreatePartitions { name: "t".into(), count, assignment: assignment.clone() }).is_err(), "{count} {assignment:?}");
        }
        assert!(m.apply(&ControllerCommand::CreatePartitions { name: "nope".into(), count: 2, assignment: None }).is_err());
        assert_eq!(m, before, "a refused change changes nothing");
    }

    #[test]
    fn a_move_lists_target_then_leaving_replicas_and_ends_at_its_target() {
        let mut m = cluster(4);
        create(&mut m, "t", 2, 2).unwrap();
        let tp = TopicPartition::new("t", 0);
        let before = m.partition(&tp).unwrap().clone();
        let (group, original) = (before.group, before.replicas.clone());
        let target = vec![4, original[1]];
        m.apply(&ControllerCommand::Reassign { moves: vec![(tp.clone(), Some(target.clone()))] }).unwrap();
        let a = m.partition(&tp).unwrap();
        assert_eq!(a.replicas, vec![4, original[1], original[0]], "target first, then the replica leaving");
        assert_eq!((a.adding(), a.removing()), (vec![4], vec![original[0]]));
        assert_eq!(a.group, group, "the same Raft group moves");
        // A new target while it moves: still relative to where it started.
        m.apply(&ControllerCommand::Reassign { moves: vec![(tp.clone(), Some(vec![3, 4]))] }).unwrap();
        let a = m.partition(&tp).unwrap();
        assert_eq!(a.replicas[..2], [3, 4]);
        assert_eq!(a.reassignment.as_ref().unwrap().original, original);
        assert!(m.apply(&ControllerCommand::CompleteReassignment { tp: tp.clone(), group, replicas: target }).is_err(), "an old target does not end the move");
        // Cancel: it moves back.
        m.apply(&ControllerCommand::Reassign { moves: vec![(tp.clone(), None)] }).unwrap();
        assert_eq!(m.partition(&tp).unwrap().reassignment.as_ref().unwrap().target, original);
        m.apply(&ControllerCommand::CompleteReassignment { tp: tp.clone(), group, replicas: original.clone() }).unwrap();
        assert_eq!(m.partition(&tp).unwrap(), &before, "back where it was, no move in progress");
        assert_eq!(m.apply(&ControllerCommand::Reassign { moves: vec![(tp.clone(), None)] }), Err(ControllerError::NoReassignmentInProgress(tp.clone())));
        m.apply(&ControllerCommand::Reassign { moves: vec![(tp.clone(), Some(original.clone()))] }).unwrap();
        assert_eq!(m.partition(&tp).unwrap(), &before, "a move to where it is changes nothing");
        // RF 2 to 3, then 3 to 1.
        m.apply(&ControllerCommand::Reassign { moves: vec![(tp.clone(), Some(vec![1, 2, 3]))] }).unwrap();
        m.apply(&ControllerCommand::CompleteReassignment { tp: tp.clone(), group, replicas: vec![1, 2, 3] }).unwrap();
        m.apply(&ControllerCommand::Reassign { moves: vec![(tp.clone(), Some(vec![3]))] }).unwrap();
        assert_eq!(m.partition(&tp).unwrap().removing(), vec![1, 2]);
        let before = m.clone();
        for (tp, t) in [(tp.clone(), Some(vec![])), (tp.clone(), Some(vec![1, 1])), (tp.clone(), Some(vec![9])), (TopicPartition::new("t", 2), Some(vec![1])), (TopicPartition::new("u", 0), Some(vec![1]))] {
            let bad = vec![(TopicPartition::new("t", 1), Some(vec![1])), (tp.clone(), t.clone())];
            assert!(m.apply(&ControllerCommand::Reassign { moves: bad }).is_err(), "{tp} {t:?}");
        }
        assert_eq!(m, before, "a refused change changes nothing");
    }

    #[test]
    fn configs_change_for_topics_and_brokers() {
        let mut m = cluster(2);
        create(&mut m, "t", 1, 1).unwrap();
        let alter = |m: &mut ClusterMetadata, resource: ConfigResource, ops: Vec<ConfigOp>| m.apply(&ControllerCommand::AlterConfigs { resource, ops, replace: false });
        alter(&mut m, ConfigResource::Topic("t".into()), vec![ConfigOp::Set("retention.ms".into(), "1000".into())]).unwrap();
        assert_eq!(m.topics["t"].configs["retention.ms"], "1000");
        alter(&mut m, ConfigResource::Broker(None), vec![ConfigOp::Set("log.retention.bytes".into(), "99".into())]).unwrap();
        alter(&mut m, ConfigResource::Broker(Some(2)), vec![ConfigOp::Set("log.roll.ms".into(), "5000".into())]).unwrap();
        assert_eq!(m.broker_configs[&None]["log.retention.bytes"], "99");
        assert_eq!(m.broker_configs[&Some(2)]["log.roll.ms"], "5000");
        alter(&mut m, ConfigResource::Broker(Some(2)), vec![ConfigOp::Delete("log.roll.ms".into())]).unwrap();
        assert!(!m.broker_configs.contains_key(&Some(2)), "an empty set is dropped");
        let before = m.clone();
        for (resource, op) in [
            (ConfigResource::Topic("nope".into()), ConfigOp::Set("retention.ms".into(), "1".into())),
            (ConfigResource::Topic("t".into()), ConfigOp::Set("retention.ms".into(), "x".into())),
            (ConfigResource::Topic("t".into()), ConfigOp::Set("min.compaction.lag.ms".into(), "9223372036854775807".into())),
            (ConfigResource::Broker(Some(9)), ConfigOp::Set("log.retention.ms".into(), "1".into())),
            (ConfigResource::Broker(None), ConfigOp::Set("broker.id".into(), "1".into())),
        ] {
            let extra = matches!(&op, ConfigOp::Set(k, _) if k == "min.compaction.lag.ms");
            let mut ops = vec![op];
            if extra {
                ops.push(ConfigOp::Set("max.compaction.lag.ms".into(), "5".into()));
            }
            assert!(alter(&mut m, resource.clone(), ops).is_err(), "{resource:?}");
        }
        assert_eq!(m, before, "a refused change changes nothing");
    }

    #[test]
    fn rejects_bad_topics() {
        let mut m = cluster(1);
        assert!(matches!(create(&mut m, "x", 1, 2), Err(ControllerError::InvalidReplicationFactor(2, 1))));
        assert!(matches!(create(&mut m, "x", 0, 1), Err(ControllerError::InvalidPartitions(0, _))));
        for name in ["", ".", "..", "a b", "ü", &"x".repeat(250)] {
            assert!(matches!(create(&mut m, name, 1, 1), Err(ControllerError::InvalidTopic(..))), "{name:?}");
        }
        create(&mut m, "x", 1, 1).unwrap();
        assert_eq!(create(&mut m, "x", 1, 1), Err(ControllerError::TopicExists("x".into())));
        m.apply(&ControllerCommand::DeleteTopic { name: "x".into() }).unwrap();
        create(&mut m, "x", 1, 1).unwrap();
        assert_eq!(m.topics["x"].partitions[0].group, GroupId(2), "re-created topic gets a fresh group");
    }
}
