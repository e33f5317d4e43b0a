//! The openraft type configuration shared by every group, and the commands
//! its entries carry.

use std::fmt;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::cluster::metadata::{ControllerCommand, ControllerError};
use crate::log::producers::ProducerRefusal;
use crate::offsets::GroupCommand;
use crate::{NodeAddr, NodeId, Offset};

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
