//! Consumer groups as the offsets partitions replicate them: committed
//! offsets and each group's last completed generation. The internal topic
//! `__consumer_offsets` has a few partitions; a group lives in the one its
//! name hashes to (Kafka's rule), and that partition's leader is the group's
//! coordinator. Membership in flight (joins, heartbeats) stays in the
//! coordinator's memory; what survives a coordinator change is written here.

use std::collections::HashMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::store::{PartitionStore, StoreError};
use crate::Offset;

/// The internal topic that holds consumer groups.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Kafka's limit on the metadata string of a committed offset.
pub const OFFSET_METADATA_MAX_BYTES: usize = 4096;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommittedOffset {
    pub offset: i64,
    /// -1 when the client did not say.
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp_ms: i64,
}

/// One member as of the last completed rebalance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRecord {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    /// The member's metadata for the chosen protocol.
    #[serde(with = "crate::serde_b64")]
    pub metadata: Bytes,
    #[serde(with = "crate::serde_b64")]
    pub assignment: Bytes,
}

/// A group's last completed generation (members empty: the group is Empty).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRecord {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub members: Vec<MemberRecord>,
}

/// A change to consumer groups, replicated through an offsets partition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum GroupCommand {
    Commit { group: String, offsets: Vec<(String, i32, CommittedOffset)> },
    Store { group: String, record: GroupRecord },
    /// Removes the group and its committed offsets.
    Delete { group: String },
    /// Removes every group's committed offsets of a deleted topic (of one
    /// offsets partition: proposed to each). Last, so that entries written
    /// before it existed decode unchanged.
    ForgetTopic { topic: String },
    /// [`GroupCommand::Store`], with the time it is stored: when an Empty
    /// group became empty, from which its offsets expire.
    StoreAt { group: String, record: GroupRecord, at_ms: i64 },
    /// Expires committed offsets (offsets.retention.minutes): each goes only
    /// if it is still the commit of that time, so a commit that raced the
    /// decision stays. A group left Empty without offsets goes with them.
    ExpireOffsets { group: String, offsets: Vec<(String, i32, i64)> },
    /// Removes a group's committed offsets of some partitions
    /// (OffsetDelete). The group itself stays.
    DeleteOffsets { group: String, offsets: Vec<(String, i32)> },
}

impl GroupCommand {
    /// The group it is for ("" for a command about every group of a partition).
    pub fn group(&self) -> &str {
        match self {
            GroupCommand::Commit { group, .. }
            | GroupCommand::Store { group, .. }
            | GroupCommand::Delete { group }
            | GroupCommand::StoreAt { group, .. }
            | GroupCommand::ExpireOffsets { group, .. }
            | GroupCommand::DeleteOffsets { group, .. } => group,
            GroupCommand::ForgetTopic { .. } => "",
        }
    }
}

/// The committed offsets of `group` that have expired at `now_ms` (Kafka's
/// offsets.retention.minutes, KIP-211): none while the group has members;
/// once it is Empty, all of them `retention_ms` after it became empty
/// (`empty_since_ms`, or each one's commit time if that is not known); for
/// a group that never joined (a standalone committer), each one
/// `retention_ms` after its commit. Returned with their commit times.
pub fn expired_offsets(
    record: Option<&GroupRecord>,
    empty_since_ms: Option<i64>,
    offsets: &[(String, i32, CommittedOffset)],
    retention_ms: i64,
    now_ms: i64,
) -> Vec<(String, i32, i64)> {
    if record.is_some_and(|r| !r.members.is_empty()) {
        return vec![];
    }
    let since = if record.is_some() { empty_since_ms } else { None };
    offsets
        .iter()
        .filter(|(_, _, o)| now_ms.saturating_sub(since.unwrap_or(o.commit_timestamp_ms)) >= retention_ms)
        .map(|(t, p, o)| (t.clone(), *p, o.commit_timestamp_ms))
        .collect()
}

/// High watermarks of the partition replicas on this node, by (topic, partition).
pub fn local_high_watermarks(store: &impl PartitionStore) -> HashMap<(String, i32), Offset> {
    store.replicas().into_iter().map(|r| ((r.topic, r.partition), r.high_watermark)).collect()
}

/// A group's committed partitions with their lag: the high watermark minus
/// the commit, where `hwm` (see [`local_high_watermarks`]) knows the partition.
pub fn group_lag(
    store: &impl PartitionStore,
    group: &str,
    hwm: &HashMap<(String, i32), Offset>,
) -> Result<Vec<(String, i32, CommittedOffset, Option<Offset>, Option<i64>)>, StoreError> {
    Ok(store
        .committed_offsets(group)?
        .into_iter()
        .map(|(t, p, o)| {
            let end = hwm.get(&(t.clone(), p)).copied();
            let lag = end.map(|e| (e - o.offset).max(0));
            (t, p, o, end, lag)
        })
        .collect())
}

/// The offsets partition of a group: Java's `String.hashCode`, made
/// non-negative, modulo the partition count, as Kafka does, so a group keeps
/// its partition for as long as the topic keeps its size.
pub fn partition_for(group: &str, partitions: i32) -> i32 {
    let mut h: i32 = 0;
    for unit in group.encode_utf16() {
        h = h.wrapping_mul(31).wrapping_add(unit as i32);
    }
    let h = if h == i32::MIN { 0 } else { h.abs() };
    h % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_expire_only_once_the_group_is_empty_or_was_never_joined() {
        let o = |t: &str, ts: i64| (t.to_string(), 0, CommittedOffset { offset: 1, leader_epoch: -1, metadata: String::new(), commit_timestamp_ms: ts });
        let offsets = vec![o("old", 100), o("new", 900)];
        let member = MemberRecord {
            member_id: "m".into(),
            instance_id: None,
            client_id: String::new(),
            client_host: String::new(),
            session_timeout_ms: 0,
            rebalance_timeout_ms: 0,
            metadata: Bytes::new(),
            assignment: Bytes::new(),
        };
        let active = GroupRecord { members: vec![member], ..Default::default() };
        let empty = GroupRecord::default();
        assert!(expired_offsets(Some(&active), None, &offsets, 100, 10_000).is_empty(), "a group with members keeps its offsets");
        // A standalone committer: each offset from its own commit.
        assert_eq!(expired_offsets(None, None, &offsets, 500, 1000), vec![("old".into(), 0, 100)]);
        // An Empty group: all from when it became empty.
        assert!(expired_offsets(Some(&empty), Some(800), &offsets, 500, 1000).is_empty());
        assert_eq!(expired_offsets(Some(&empty), Some(800), &offsets, 500, 1300).len(), 2);
        // Empty since an unknown time: each from its commit, as Kafka does.
        assert_eq!(expired_offsets(Some(&empty), None, &offsets, 500, 1000).len(), 1);
    }

    #[test]
    fn partition_matches_java_hash_code() {
        // "test-group".hashCode() == 627841412 in Java; % 50 == 12.
        assert_eq!(partition_for("test-group", 50), 12);
        assert_eq!(partition_for("", 16), 0);
        // Its hashCode is i32::MIN, which Kafka's Utils.abs maps to 0.
        assert_eq!(partition_for("polygenelubricants", 16), 0);
        for g in ["a", "b", "group-1", "ünïcode"] {
            assert!((0..16).contains(&partition_for(g, 16)));
        }
    }
}
