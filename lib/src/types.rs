//! Identifiers and the openraft type configuration shared by every group.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::metadata::{ControllerCommand, ControllerError};
use crate::offsets::GroupCommand;

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

/// A command replicated through a Raft group.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Command {
    /// One Kafka record batch (magic 2), exactly as the producer sent it.
    /// The log entry *is* the partition's data: offsets are assigned when the
    /// entry is applied, and patched into the batch header on fetch.
    Append {
        #[serde(with = "crate::serde_b64")]
        batch: Bytes,
        /// Set by the leader for an acks=1 produce, so that its log store can
        /// report the local durable append (see `PartitionLog::local_append`).
        /// Never stored or replicated: 0 everywhere else.
        #[serde(skip)]
        token: u64,
    },
    /// A change to cluster metadata (controller group only).
    Controller(ControllerCommand),
    /// A change to consumer groups (offsets partitions only).
    Group(GroupCommand),
    /// Moves the partition's log start offset up to `log_start_offset`
    /// (DeleteRecords, retention): batches wholly below it are no longer
    /// indexed or served. Offsets never move; a batch holding the new log
    /// start stays whole. Applied by every replica at the same place in the
    /// log, so all agree on the log start.
    Trim { log_start_offset: Offset },
    /// Forgets the idempotent producers whose last batch is timestamped
    /// before this (producer.id.expiration.ms, by the batches' timestamps as
    /// Kafka does). Replicated, so every replica forgets the same producers
    /// at the same place and judges later batches alike.
    ExpireProducers { last_before_ms: i64 },
    /// Compacts the partition (cleanup.policy=compact): every replica runs
    /// the same job on its own log, so all keep the same bytes (see
    /// `log::compaction`). The keys of [`clean_from`, `dirty_end`) decide
    /// which records of the log below `dirty_end` survive; that part ends
    /// earlier if its keys exceed `keys_max`. Tombstones timestamped before
    /// `tombstones_before_ms` go.
    Compact { clean_from: Offset, dirty_end: Offset, tombstones_before_ms: i64, keys_max: u64, decompressed_bytes_max: u64 },
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::Append { batch, .. } => write!(f, "append({} bytes)", batch.len()),
            Command::Controller(c) => write!(f, "controller({c:?})"),
            Command::Group(c) => write!(f, "group({})", c.group()),
            Command::Trim { log_start_offset } => write!(f, "trim(log start {log_start_offset})"),
            Command::ExpireProducers { last_before_ms } => write!(f, "expire producers (last batch before {last_before_ms})"),
            Command::Compact { clean_from, dirty_end, .. } => write!(f, "compact (keys of {clean_from}..{dirty_end})"),
        }
    }
}

/// What applying a [`Command`] produced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandResult {
    None,
    /// The batch now starts at `base_offset`.
    Appended { base_offset: Offset },
    /// An idempotent producer sent this batch again: it was stored once,
    /// at `base_offset`, and is not stored twice.
    Duplicate { base_offset: Offset },
    /// The batch breaks its idempotent producer's sequence or epoch: not stored.
    ProducerRefused(ProducerRefusal),
    Controller(Result<(), ControllerError>),
    /// The partition's log start offset after a trim.
    Trimmed { log_start_offset: Offset },
    /// The command does not belong to this kind of group.
    Rejected(String),
}

/// Why a partition refused an idempotent producer's batch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProducerRefusal {
    /// The batch does not follow the last one stored (a gap or a reorder).
    OutOfOrderSequence { producer_id: i64, expected: i32, got: i32 },
    /// A newer epoch of this producer id has written here (fenced).
    StaleEpoch { producer_id: i64, current: i16, got: i16 },
}

impl fmt::Display for ProducerRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProducerRefusal::OutOfOrderSequence { producer_id, expected, got } => {
                write!(f, "producer {producer_id}: expected sequence {expected}, got {got}")
            }
            ProducerRefusal::StaleEpoch { producer_id, current, got } => {
                write!(f, "producer {producer_id}: epoch {got} is older than the current epoch {current}")
            }
        }
    }
}

openraft::declare_raft_types!(
    pub TypeConfig:
        D = Command,
        R = CommandResult,
        NodeId = NodeId,
        Node = NodeAddr,
);

pub type Raft<SM> = openraft::Raft<TypeConfig, SM>;
pub type LogId = openraft::alias::LogIdOf<TypeConfig>;
pub type Entry = openraft::alias::EntryOf<TypeConfig>;
pub type StoredMembership = openraft::alias::StoredMembershipOf<TypeConfig>;
pub type SnapshotMeta = openraft::alias::SnapshotMetaOf<TypeConfig>;
/// Snapshots travel as one bounded in-memory buffer.
pub type SnapshotData = std::io::Cursor<Vec<u8>>;
