//! The cluster's vocabulary: nodes, groups, partitions, offsets.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// A node of the cluster, as named in the cluster config.
pub type NodeId = u64;

/// A Kafka offset. Kafka uses signed 64-bit offsets; -1 means "none".
pub type Offset = i64;

/// One Raft group: the controller is group 0, every partition has its own id,
/// handed out by the controller and never reused (a re-created topic gets
/// fresh groups, so stale replicas of the old one can never be mistaken for it).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct GroupId(pub u64);

pub const CONTROLLER_GROUP: GroupId = GroupId(0);

impl fmt::Display for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "g{}", self.0)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TopicPartition {
    pub topic: Arc<str>,
    pub partition: i32,
}

impl TopicPartition {
    pub fn new(topic: impl Into<Arc<str>>, partition: i32) -> Self {
        Self { topic: topic.into(), partition }
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// How to reach a node: what clients are told (Kafka) and where peers send
/// Raft traffic.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NodeAddr {
    pub kafka_addr: String,
    pub raft_addr: String,
}

impl fmt::Display for NodeAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "kafka={} raft={}", self.kafka_addr, self.raft_addr)
    }
}
