//! State machines: the controller's (cluster metadata) and the partitions'
//! (offsets). A partition's state machine never copies record data: applying
//! an append records where the batch's log entry is and which offsets it got,
//! its idempotent producer's sequence, and the leader epoch it was written in.
//! The partitions of the offsets topic apply consumer-group commands instead.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;
use chronik::log::batch;
use chronik::raft::engine::{LocalAppend, PartitionLog};
use chronik::store::BatchLocation;
use chronik::cluster::metadata::ClusterMetadata;
use chronik::offsets::{CommittedOffset, GroupCommand, GroupRecord};
use chronik::log::producers::{self, ProducerState, StoredBatch, Verdict};
use chronik::log::retention::{self, BatchSpan, Retention, SegmentRule};
use chronik::{Command, CommandResult, Entry, GroupId, LogId, Offset, SnapshotData, SnapshotMeta, StoreError, StoredMembership, TypeConfig};
use futures::{Stream, TryStreamExt};
use openraft::storage::{EntryResponder, RaftSnapshotBuilder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tracing::info;

use crate::chunked::{Chunked, Writes};
use crate::compaction;
use crate::time_index;
use crate::local_ack::LocalAcks;
use crate::log_store::{decode, encode, io_err};
use crate::snapshots::{self, Segments};
use crate::{keys, Inner};

/// Index entries a trim removes per sled batch.
const TRIM_BATCH_KEYS: u64 = 4096;

/// What a state machine persists (at g ++ b's', and as its snapshot).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct SmState {
    pub(crate) last_applied: Option<LogId>,
    pub(crate) membership: StoredMembership,
    /// Partition: the next offset to assign (the high watermark once applied).
    pub(crate) next_offset: Offset,
    pub(crate) log_start_offset: Offset,
    /// Controller only, as JSON: self-describing, so a field added to the
    /// metadata with a default still reads state stored before it.
    #[serde(with = "metadata_json")]
    pub(crate) metadata: Option<ClusterMetadata>,
}

mod metadata_json {
    use chronik::cluster::metadata::ClusterMetadata;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub(super) fn serialize<S: Serializer>(m: &Option<ClusterMetadata>, s: S) -> Result<S::Ok, S::Error> {
        m.as_ref().map(serde_json::to_vec).transpose().map_err(serde::ser::Error::custom)?.serialize(s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<ClusterMetadata>, D::Error> {
        let json: Option<Vec<u8>> = Deserialize::deserialize(d)?;
        json.map(|j| serde_json::from_slice(&j)).transpose().map_err(serde::de::Error::custom)
    }
}

/// The encodings of [`SmState`] and [`SnapshotBody`] whose cluster metadata
/// was bincode (V2), and before that without dynamic broker configs (V1).
/// bincode cannot skip a missing field, so state stored then is read with
/// these frozen copies of the types of the day.
mod legacy {
    use std::collections::BTreeMap;

    use chronik::cluster::dynamic_config::BrokerConfigs;
    use chronik::cluster::metadata::{ClusterMetadata, PartitionAssignment, TopicMeta};
    use chronik::{GroupId, LogId, NodeAddr, NodeId, Offset, StoredMembership};
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct PartitionAssignmentV1 {
        group: GroupId,
        replicas: Vec<NodeId>,
    }

    #[derive(Deserialize)]
    struct TopicMetaV1 {
        name: String,
        id: u128,
        partitions: Vec<PartitionAssignmentV1>,
        configs: BTreeMap<String, String>,
    }

    #[derive(Deserialize)]
    pub(super) struct ClusterMetadataV1 {
        nodes: BTreeMap<NodeId, NodeAddr>,
        topics: BTreeMap<String, TopicMetaV1>,
        next_group: u64,
        next_placement: u64,
        next_producer_id: i64,
        producer_id_blocks: BTreeMap<NodeId, i64>,
    }

    /// V1's fields then broker configs: bincode writes a nested struct as
    /// its fields in order, so these are the same bytes.
    #[derive(Deserialize)]
    pub(super) struct ClusterMetadataV2 {
        v1: ClusterMetadataV1,
        broker_configs: BrokerConfigs,
    }

    #[derive(Deserialize)]
    pub(super) struct SmStateV<M> {
        last_applied: Option<LogId>,
        membership: StoredMembership,
        next_offset: Offset,
        log_start_offset: Offset,
        metadata: Option<M>,
    }

    #[derive(Deserialize)]
    pub(super) struct SnapshotBodyV<M> {
        state: SmStateV<M>,
        records: Vec<(u8, Vec<u8>, Vec<u8>)>,
    }

    pub(super) type SmStateV1 = SmStateV<ClusterMetadataV1>;
    pub(super) type SmStateV2 = SmStateV<ClusterMetadataV2>;

    impl From<ClusterMetadataV1> for ClusterMetadata {
        fn from(m: ClusterMetadataV1) -> Self {
            let topics = m
                .topics
                .into_iter()
                .map(|(name, t)| {
                    let partitions = t.partitions.into_iter().map(|p| PartitionAssignment::new(p.group, p.replicas)).collect();
                    (name, TopicMeta { name: t.name, id: t.id, partitions, configs: t.configs })
                })
                .collect();
            ClusterMetadata {
                nodes: m.nodes,
                topics,
                next_group: m.next_group,
                next_placement: m.next_placement,
                next_producer_id: m.next_producer_id,
                producer_id_blocks: m.producer_id_blocks,
                ..Default::default()
            }
        }
    }

    impl From<ClusterMetadataV2> for ClusterMetadata {
        fn from(m: ClusterMetadataV2) -> Self {
            ClusterMetadata { broker_configs: m.broker_configs, ..m.v1.into() }
        }
    }

    impl<M: Into<ClusterMetadata>> From<SnapshotBodyV<M>> for super::SnapshotBody {
        fn from(v: SnapshotBodyV<M>) -> Self {
            Self { state: v.state.into(), records: v.records }
        }
    }

    impl<M: Into<ClusterMetadata>> From<SmStateV<M>> for super::SmState {
        fn from(s: SmStateV<M>) -> Self {
            Self {
                last_applied: s.last_applied,
                membership: s.membership,
                next_offset: s.next_offset,
                log_start_offset: s.log_start_offset,
                metadata: s.metadata.map(Into::into),
            }
        }
    }
}

impl SmState {
    /// Decodes a stored state, of this version or an older one.
    pub(crate) fn decode(b: &[u8]) -> io::Result<Self> {
        decode::<SmState>(b)
            .or_else(|e| decode::<legacy::SmStateV2>(b).map(Into::into).map_err(|_| e))
            .or_else(|e| decode::<legacy::SmStateV1>(b).map(Into::into).map_err(|_| e))
    }
}

impl SnapshotBody {
    /// Decodes a snapshot of this version or an older one (also one from
    /// before keyed state, which held the state alone).
    pub(crate) fn decode(b: &[u8]) -> io::Result<Self> {
        decode::<SnapshotBody>(b)
            .or_else(|e| decode::<legacy::SnapshotBodyV<legacy::ClusterMetadataV2>>(b).map(Into::into).map_err(|_| e))
            .or_else(|e| decode::<legacy::SnapshotBodyV<legacy::ClusterMetadataV1>>(b).map(Into::into).map_err(|_| e))
            .or_else(|e| SmState::decode(b).map(|state| SnapshotBody { state, records: vec![] }).map_err(|_| e))
    }
}

/// Where a batch lives: fixed 28 bytes at g ++ b'i' ++ base offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct IndexValue {
    pub(crate) log_index: u64,
    pub(crate) last_offset: Offset,
    pub(crate) max_timestamp: i64,
    pub(crate) bytes: u32,
}

impl IndexValue {
    pub(crate) fn encode(&self) -> [u8; 28] {
        let mut b = [0u8; 28];
        b[0..8].copy_from_slice(&self.log_index.to_be_bytes());
        b[8..16].copy_from_slice(&self.last_offset.to_be_bytes());
        b[16..24].copy_from_slice(&self.max_timestamp.to_be_bytes());
        b[24..28].copy_from_slice(&self.bytes.to_be_bytes());
        b
    }
    pub(crate) fn decode(b: &[u8]) -> Self {
        Self {
            log_index: u64::from_be_bytes(b[0..8].try_into().unwrap()),
            last_offset: i64::from_be_bytes(b[8..16].try_into().unwrap()),
            max_timestamp: i64::from_be_bytes(b[16..24].try_into().unwrap()),
            bytes: u32::from_be_bytes(b[24..28].try_into().unwrap()),
        }
    }
}

/// A snapshot: the applied state plus the partition's small keyed state
/// (producers, epochs, consumer groups), as (tag, key suffix, value).
#[derive(Serialize, Deserialize)]
pub(crate) struct SnapshotBody {
    pub(crate) state: SmState,
    pub(crate) records: Vec<(u8, Vec<u8>, Vec<u8>)>,
}

/// Read side of a partition, shared with the Kafka front door.
pub struct PartitionReader {
    inner: Arc<Inner>,
    group: GroupId,
    /// The next offset at the newest closed segment (compaction stays below).
    pub(crate) closed_end: AtomicI64,
    hwm: watch::Sender<Offset>,
    log_start: AtomicI64,
    /// Bytes of the indexed batches (persisted at g ++ b'z').
    pub(crate) retained: AtomicU64,
    /// How this replica closes segments (set by the node from topic configs).
    pub(crate) segment: Mutex<SegmentRule>,
    /// Log index of the current snapshot, and of the newest checkpoint below
    /// the log start (`snapshots::NONE` if none).
    pub(crate) snapshot_index: AtomicI64,
    pub(crate) purge_candidate: AtomicI64,
    local_acks: Arc<LocalAcks>,
    /// Leader epoch -> first offset written in it.
    epochs: RwLock<BTreeMap<i32, Offset>>,
}

impl PartitionReader {
    /// Keys starting with `prefix`, with their values.
    fn scan(&self, prefix: &[u8]) -> impl Iterator<Item = Result<(sled::IVec, sled::IVec), StoreError>> + '_ {
        scan_values(&self.inner.sm, prefix).map(|kv| kv.map_err(|e| self.inner.storage_err(e)))
    }

    pub(crate) fn group(&self) -> GroupId {
        self.group
    }

    /// The index key of the batch holding `offset`, or of the first after it.
    pub(crate) fn first_index_key(&self, offset: Offset) -> Result<Vec<u8>, StoreError> {
        let lo = keys::index(self.group, 0);
        // The batch containing `offset` starts at or below it.
        Ok(match self.inner.sm.tree.range(lo..=keys::index(self.group, offset)).next_back() {
            Some(kv) => {
                let (k, v) = kv.map_err(|e| self.inner.storage_err(e))?;
                if self.index_value(&v)?.last_offset >= offset {
                    k.to_vec()
                } else {
                    keys::index(self.group, offset + 1).to_vec()
                }
            }
            None => keys::index(self.group, offset).to_vec(),
        })
    }

    fn keys(&self, prefix: &[u8]) -> impl Iterator<Item = Result<sled::IVec, StoreError>> + '_ {
        self.inner.sm.tree.scan_prefix(prefix).keys().map(|k| k.map_err(|e| self.inner.storage_err(e)))
    }

    fn index_value(&self, stored: &[u8]) -> Result<IndexValue, StoreError> {
        match Chunked::inline(stored) {
            Ok(v) if v.len() == 28 => Ok(IndexValue::decode(v)),
            _ => Err(self.inner.storage_err(format!("group {} has a malformed batch index entry", self.group))),
        }
    }

    fn batch_bytes(&self, base: Offset, iv: &IndexValue) -> Result<Bytes, StoreError> {
        let raw = self
            .inner
            .log
            .get(&keys::log(self.group, iv.log_index))
            .map_err(|e| self.inner.storage_err(e))?
            .ok_or_else(|| self.inner.storage_err(format!("group {} lost log entry {}", self.group, iv.log_index)))?;
        let entry: Entry = decode(&raw).map_err(|e| self.inner.storage_err(e))?;
        match entry.payload {
            EntryPayload::Normal(Command::Append { batch: b, .. }) => {
                // Check the pairing of index and entry on every read: a
                // mismatch is a storage bug and must not reach a consumer.
                // (Compaction may shrink the batch, never its offsets.)
                let taken = batch::parse_header(&b).ok().and_then(|h| batch::offsets_taken(&h));
                assert_eq!(taken, Some(iv.last_offset - base + 1), "group {} entry {} does not hold offsets {base}..={}", self.group, iv.log_index, iv.last_offset);
                Ok(batch::patched(b, base, entry.log_id.leader_id.term as i32))
            }
            other => Err(self.inner.storage_err(format!(
                "group {} entry {} is {other:?}, not an append",
                self.group, iv.log_index
            ))),
        }
    }
}

impl PartitionLog for PartitionReader {
    fn local_append(&self) -> LocalAppend {
        self.local_acks.register()
    }

    fn high_watermark(&self) -> Offset {
        *self.hwm.borrow()
    }

    fn log_start_offset(&self) -> Offset {
        self.log_start.load(Ordering::Acquire)
    }

    fn subscribe(&self) -> watch::Receiver<Offset> {
        self.hwm.subscribe()
    }

    fn read(&self, offset: Offset, max_bytes: usize) -> Result<Vec<Bytes>, StoreError> {
        let hwm = self.high_watermark();
        let start = self.first_index_key(offset)?;
        let mut out = Vec::new();
        let mut total = 0usize;
        for kv in self.inner.sm.tree.range(start..keys::index(self.group, hwm).to_vec()) {
            let (k, v) = kv.map_err(|e| self.inner.storage_err(e))?;
            let iv = self.index_value(&v)?;
            if !out.is_empty() && total + iv.bytes as usize > max_bytes {
                break;
            }
            match self.batch_bytes(keys::index_offset(&k), &iv) {
                Ok(b) => out.push(b),
                // Trimmed and purged since its index entry was read: it is
                // below the log start now, and so not for this reader.
                Err(_) if iv.last_offset < self.log_start_offset() => continue,
                Err(e) => return Err(e),
            }
            total += iv.bytes as usize;
            if total >= max_bytes {
                break;
            }
        }
        Ok(out)
    }

    fn committed_offsets(&self, group: &str) -> Result<Vec<(String, i32, CommittedOffset)>, StoreError> {
        let mut out = Vec::new();
        for kv in self.scan(&keys::offsets_of(self.group, group)) {
            let (k, v) = kv?;
            let (topic, partition) = keys::parse_offset(self.group, group, &k)
                .ok_or_else(|| self.inner.storage_err(format!("group {} has a malformed offset key", self.group)))?;
            out.push((topic, partition, decode(&v).map_err(|e| self.inner.storage_err(e))?));
        }
        Ok(out)
    }

    fn group_record(&self, group: &str) -> Result<Option<GroupRecord>, StoreError> {
        match self.inner.sm.get(&keys::tagged(self.group, keys::GROUP, group.as_bytes())).map_err(|e| self.inner.storage_err(e))? {
            Some(v) => decode(&v).map(Some).map_err(|e| self.inner.storage_err(e)),
            None => Ok(None),
        }
    }

    fn group_stored_at(&self, group: &str) -> Result<Option<i64>, StoreError> {
        match self.inner.sm.tree.get(keys::tagged(self.group, keys::GROUP_TIME, group.as_bytes())).map_err(|e| self.inner.storage_err(e))? {
            Some(v) => Chunked::inline(&v)
                .ok()
                .and_then(|b| b.try_into().ok())
                .map(|b| Some(i64::from_be_bytes(b)))
                .ok_or_else(|| self.inner.storage_err(format!("group {} has a malformed group time", self.group))),
            None => Ok(None),
        }
    }

    fn oldest_producer_timestamp(&self) -> Result<Option<i64>, StoreError> {
        let mut oldest: Option<i64> = None;
        for kv in self.scan(&keys::tag(self.group, keys::PRODUCER)) {
            let (_, v) = kv?;
            let p: ProducerState = decode(&v).map_err(|e| self.inner.storage_err(e))?;
            oldest = Some(oldest.map_or(p.last_timestamp_ms, |o| o.min(p.last_timestamp_ms)));
        }
        Ok(oldest)
    }

    fn committed_topics(&self) -> Result<BTreeSet<String>, StoreError> {
        let mut topics = BTreeSet::new();
        for k in self.keys(&keys::tag(self.group, keys::OFFSET)) {
            if let Some((_, topic, _)) = keys::parse_any_offset(self.group, &k?) {
                topics.insert(topic);
            }
        }
        Ok(topics)
    }

    fn group_names(&self) -> Result<Vec<String>, StoreError> {
        // Groups with a record, and groups with only committed offsets (a
        // consumer that commits without joining).
        let mut names = BTreeSet::new();
        for k in self.keys(&keys::tag(self.group, keys::GROUP)) {
            names.insert(String::from_utf8_lossy(&k?[9..]).into_owned());
        }
        for k in self.keys(&keys::tag(self.group, keys::OFFSET)) {
            let k = k?;
            let len = u32::from_be_bytes(k[9..13].try_into().expect("offset key has a group length")) as usize;
            names.insert(String::from_utf8_lossy(&k[13..13 + len]).into_owned());
        }
        Ok(names.into_iter().collect())
    }

    fn epoch_end_offset(&self, epoch: i32) -> Option<(i32, Offset)> {
        let epochs = self.epochs.read().unwrap();
        let (found, _) = epochs.range(..=epoch).next_back()?;
        let end = epochs.range(found + 1..).next().map(|(_, start)| *start).unwrap_or_else(|| self.high_watermark());
        Some((*found, end))
    }

    fn batch_locations(&self, from: Offset, limit: usize) -> Result<Vec<BatchLocation>, StoreError> {
        let hwm = self.high_watermark();
        let mut out = Vec::new();
        for kv in self.inner.sm.tree.range(self.first_index_key(from)?..keys::index(self.group, hwm).to_vec()).take(limit) {
            let (k, v) = kv.map_err(|e| self.inner.storage_err(e))?;
            let iv = self.index_value(&v)?;
            let base_offset = keys::index_offset(&k);
            let b = self.batch_bytes(base_offset, &iv)?;
            let h = batch::parse_header(&b).map_err(|e| self.inner.storage_err(format!("group {} batch at {base_offset}: {e}", self.group)))?;
            out.push(BatchLocation {
                base_offset,
                last_offset: iv.last_offset,
                log_index: iv.log_index,
                bytes: iv.bytes,
                leader_epoch: i32::from_be_bytes(b[12..16].try_into().expect("a batch header")),
                producer_id: h.producer_id,
                producer_epoch: h.producer_epoch,
                base_sequence: h.base_sequence,
            });
        }
        Ok(out)
    }

    fn retained_bytes(&self) -> u64 {
        self.retained.load(Ordering::Acquire)
    }

    fn set_segment_rule(&self, rule: SegmentRule) {
        *self.segment.lock().unwrap() = rule;
    }

    fn compaction_view(&self, newest_cleanable_ms: i64) -> Result<chronik::log::compaction::CompactionView, StoreError> {
        crate::off_runtime(|| compaction::view(&self.inner, self, newest_cleanable_ms)).map_err(|e| self.inner.storage_err(e))
    }

    fn snapshot_due(&self) -> bool {
        self.purge_candidate.load(Ordering::Acquire) > self.snapshot_index.load(Ordering::Acquire)
    }

    fn trim_point(&self, rule: &Retention, now_ms: i64) -> Result<Option<Offset>, StoreError> {
        let (from, hwm) = (self.first_index_key(self.log_start_offset())?, self.high_watermark());
        // Read lazily: the rule stops at the first batch that may stay.
        let mut failed = None;
        let spans = self.inner.sm.tree.range(from..keys::index(self.group, hwm).to_vec()).map_while(|kv| {
            match kv.map_err(|e| self.inner.storage_err(e)).and_then(|(_, v)| self.index_value(&v)) {
                Ok(iv) => Some(BatchSpan { last_offset: iv.last_offset, max_timestamp: iv.max_timestamp, bytes: iv.bytes as u64 }),
                Err(e) => {
                    failed = Some(e);
                    None
                }
            }
        });
        let point = retention::trim_point(spans, self.retained_bytes(), rule, now_ms);
        match failed {
            Some(e) => Err(e),
            None => Ok(point.filter(|p| *p > self.log_start_offset())),
        }
    }

    fn producers(&self) -> Result<Vec<(i64, ProducerState)>, StoreError> {
        scan_values(&self.inner.sm, &keys::tag(self.group, keys::PRODUCER))
            .map(|kv| -> io::Result<(i64, ProducerState)> {
                let (k, v) = kv?;
                Ok((i64::from_be_bytes(k[9..17].try_into().map_err(io_err)?), decode(&v)?))
            })
            .collect::<io::Result<_>>()
            .map_err(|e| self.inner.storage_err(e))
    }

    fn newest_timestamp(&self) -> Result<Option<i64>, StoreError> {
        time_index::newest(&self.inner, self.group).map_err(|e| self.inner.storage_err(e))
    }

    fn batch_at_timestamp(&self, timestamp: i64) -> Result<Option<Bytes>, StoreError> {
        // No batch before the one the time index names is as new; from
        // there (or the log start), the first that is.
        let Some(from) = time_index::lookup(&self.inner, self.group, timestamp).map_err(|e| self.inner.storage_err(e))? else {
            return Ok(None);
        };
        let hwm = self.high_watermark();
        for kv in self.inner.sm.tree.range(self.first_index_key(from.max(self.log_start_offset()))?..keys::index(self.group, hwm).to_vec()) {
            let (k, v) = kv.map_err(|e| self.inner.storage_err(e))?;
            let iv = self.index_value(&v)?;
            if iv.max_timestamp >= timestamp {
                return self.batch_bytes(keys::index_offset(&k), &iv).map(Some);
            }
        }
        Ok(None)
    }
}

pub(crate) enum Kind {
    Controller(watch::Sender<Arc<ClusterMetadata>>),
    Partition(Arc<PartitionReader>),
}

pub struct SledStateMachine {
    pub(crate) inner: Arc<Inner>,
    pub(crate) group: GroupId,
    pub(crate) state: SmState,
    pub(crate) kind: Kind,
    /// Partition: idempotent producers (persisted at g ++ b'P' ++ id).
    producers: HashMap<i64, ProducerState>,
    /// Index entries written by the apply under way, not yet in the tree
    /// (a trim later in the same apply must see them).
    staged_index: Vec<(Offset, IndexValue)>,
    /// Partition: the open segment and the closed ones' checkpoints.
    pub(crate) segments: Segments,
    /// The apply under way recorded a compaction job for the cleaner.
    compaction_queued: bool,
    /// Partition: the newest timestamp of the time index.
    time_newest: Option<i64>,
}

impl SledStateMachine {
    fn load(inner: &Inner, group: GroupId) -> Result<SmState, StoreError> {
        match inner.sm.get(&keys::tag(group, keys::STATE)).map_err(|e| inner.storage_err(e))? {
            Some(v) => SmState::decode(&v).map_err(|e| inner.storage_err(e)),
            None => Ok(SmState::default()),
        }
    }

    pub(crate) fn open_controller(inner: Arc<Inner>) -> Result<(Self, watch::Receiver<Arc<ClusterMetadata>>), StoreError> {
        let group = chronik::CONTROLLER_GROUP;
        let state = Self::load(&inner, group)?;
        let md = Arc::new(state.metadata.clone().unwrap_or_default());
        info!(node_id = inner.node, topics = md.topics.len(), applied = ?state.last_applied, "controller state loaded");
        let (tx, rx) = watch::channel(md);
        let segments = Segments::load(&inner, group).map_err(|e| inner.storage_err(e))?;
        Ok((Self { inner, group, state, kind: Kind::Controller(tx), producers: HashMap::new(), staged_index: Vec::new(), segments, compaction_queued: false, time_newest: None }, rx))
    }

    /// The persisted (last applied index, next offset) of a partition group.
    pub(crate) fn applied_end(inner: &Inner, group: GroupId) -> Result<(Option<u64>, Offset), StoreError> {
        let s = Self::load(inner, group)?;
        Ok((s.last_applied.map(|l| l.index), s.next_offset))
    }

    pub(crate) fn open_partition(
        inner: Arc<Inner>,
        group: GroupId,
        local_acks: Arc<LocalAcks>,
    ) -> Result<(Self, Arc<dyn PartitionLog>), StoreError> {
        let state = Self::load(&inner, group)?;
        let retained = Self::load_retained_bytes(&inner, group)?;
        let segments = Segments::load(&inner, group).map_err(|e| inner.storage_err(e))?;
        let reader = Arc::new(PartitionReader {
            inner: inner.clone(),
            group,
            hwm: watch::Sender::new(state.next_offset),
            log_start: AtomicI64::new(state.log_start_offset),
            closed_end: AtomicI64::new(segments.closed_end().unwrap_or(0)),
            retained: AtomicU64::new(retained),
            segment: Mutex::new(SegmentRule::default()),
            snapshot_index: AtomicI64::new(snapshots::NONE),
            purge_candidate: AtomicI64::new(snapshots::NONE),
            local_acks,
            epochs: RwLock::new(BTreeMap::new()),
        });
        let mut sm = Self { inner, group, state, kind: Kind::Partition(reader.clone()), producers: HashMap::new(), staged_index: Vec::new(), segments, compaction_queued: false, time_newest: None };
        sm.time_newest = sm.load_time_index().map_err(|e| sm.inner.storage_err(e))?;
        sm.load_keyed_state().map_err(|e| sm.inner.storage_err(e))?;
        let snapshot = sm.stored_snapshot().map_err(|e| sm.inner.storage_err(e))?;
        let index = snapshot.and_then(|(m, _)| m.last_log_id).map(|l| l.index as i64).unwrap_or(snapshots::NONE);
        reader.snapshot_index.store(index, Ordering::Release);
        // Recomputes the purge candidate (closing no segment: nothing applied).
        sm.after_apply(0).map_err(|e| sm.inner.storage_err(e))?;
        // A compaction a restart interrupted carries on.
        if compaction::pending(&sm.inner, group).map_err(|e| sm.inner.storage_err(e))? {
            sm.inner.cleaner.submit(reader.clone());
        }
        Ok((sm, reader))
    }

    /// After a snapshot install emptied the index.
    pub(crate) fn reset_time_index(&mut self) {
        self.time_newest = None;
    }

    /// The newest timestamp of the time index, built from the offset index
    /// for a partition written before time indexes existed.
    fn load_time_index(&self) -> io::Result<Option<i64>> {
        if let Some(ts) = time_index::newest(&self.inner, self.group)? {
            return Ok(Some(ts));
        }
        let mut index = self.inner.sm.tree.scan_prefix(keys::tag(self.group, keys::INDEX)).peekable();
        if index.peek().is_none() {
            return Ok(None);
        }
        let entries = index.map(|kv| {
            let (k, v) = kv.map_err(io_err)?;
            Ok((keys::index_offset(&k), IndexValue::decode(Chunked::inline(&v)?).max_timestamp))
        });
        let built = crate::off_runtime(|| time_index::build(&self.inner, self.group, entries))?;
        info!(node_id = self.inner.node, group = %self.group, entries = built, "time index built from the offset index");
        time_index::newest(&self.inner, self.group)
    }

    /// The bytes of a partition's indexed batches: stored since retention
    /// came; counted from the index for a partition written before.
    fn load_retained_bytes(inner: &Inner, group: GroupId) -> Result<u64, StoreError> {
        if let Some(v) = inner.sm.get(&keys::tag(group, keys::SIZE)).map_err(|e| inner.storage_err(e))? {
            return v.as_ref().try_into().map(u64::from_be_bytes).map_err(|_| inner.storage_err(format!("group {group} has a malformed size")));
        }
        Self::count_retained_bytes(inner, group)
    }

    fn count_retained_bytes(inner: &Inner, group: GroupId) -> Result<u64, StoreError> {
        let mut total = 0u64;
        for kv in inner.sm.tree.scan_prefix(keys::tag(group, keys::INDEX)) {
            let (_, v) = kv.map_err(|e| inner.storage_err(e))?;
            match Chunked::inline(&v) {
                Ok(v) if v.len() == 28 => total += IndexValue::decode(v).bytes as u64,
                _ => return Err(inner.storage_err(format!("group {group} has a malformed batch index entry"))),
            }
        }
        Ok(total)
    }

    /// Reads producers and epochs from disk into memory.
    pub(crate) fn load_keyed_state(&mut self) -> io::Result<()> {
        let Kind::Partition(reader) = &self.kind else { return Ok(()) };
        self.producers.clear();
        for kv in scan_values(&self.inner.sm, &keys::tag(self.group, keys::PRODUCER)) {
            let (k, v) = kv?;
            let pid = i64::from_be_bytes(k[9..17].try_into().map_err(io_err)?);
            self.producers.insert(pid, decode(&v)?);
        }
        let mut epochs = reader.epochs.write().unwrap();
        epochs.clear();
        for kv in scan_values(&self.inner.sm, &keys::tag(self.group, keys::EPOCH)) {
            let (k, v) = kv?;
            let epoch = i32::from_be_bytes(k[9..13].try_into().map_err(io_err)?);
            epochs.insert(epoch, decode(&v)?);
        }
        Ok(())
    }

    /// The partition's small keyed state, for a snapshot.
    pub(crate) fn keyed_records(inner: &Inner, group: GroupId) -> io::Result<Vec<(u8, Vec<u8>, Vec<u8>)>> {
        let mut out = Vec::new();
        for tag in keys::SNAPSHOT_TAGS {
            for kv in scan_values(&inner.sm, &keys::tag(group, tag)) {
                let (k, v) = kv?;
                out.push((tag, k[9..].to_vec(), v.to_vec()));
            }
        }
        Ok(out)
    }

    pub(crate) fn publish(&self) {
        match &self.kind {
            Kind::Controller(tx) => {
                let md = self.state.metadata.clone().unwrap_or_default();
                tx.send_if_modified(|cur| {
                    if **cur != md {
                        *cur = Arc::new(md);
                        true
                    } else {
                        false
                    }
                });
            }
            Kind::Partition(r) => {
                r.log_start.store(self.state.log_start_offset, Ordering::Release);
                r.hwm.send_if_modified(|h| std::mem::replace(h, self.state.next_offset) != self.state.next_offset);
            }
        }
    }

    fn apply_one(&mut self, entry: &Entry, w: &mut Writes) -> CommandResult {
        match (&entry.payload, &self.kind) {
            (EntryPayload::Blank, _) => CommandResult::None,
            (EntryPayload::Membership(m), _) => {
                self.state.membership = StoredMembership::new(Some(entry.log_id), m.clone());
                CommandResult::None
            }
            (EntryPayload::Normal(Command::Append { batch: b, .. }), Kind::Partition(_)) => {
                // Validated before it was proposed; re-parsed here so that every
                // replica derives the same offsets from the same bytes. A batch
                // compaction has emptied (sent by a leader that compacted it
                // already) takes its offsets all the same: lastOffsetDelta + 1.
                let (h, taken) = match batch::parse_header(b).ok().and_then(|h| Some((h, batch::offsets_taken(&h)?))) {
                    Some(ht) => ht,
                    None => {
                        // Validated before it was proposed, so every replica
                        // rejects it alike; worth a word all the same.
                        tracing::warn!(node_id = self.inner.node, group = %self.group, index = entry.log_id.index, "committed entry holds no parsable batch; no offsets assigned");
                        return CommandResult::Rejected("unparsable batch".into());
                    }
                };
                let idempotent = h.producer_id >= 0 && h.base_sequence >= 0;
                let last_seq = producers::last_seq(h.base_sequence, taken as i32);
                if idempotent {
                    match producers::judge(self.producers.get(&h.producer_id), h.producer_id, h.producer_epoch, h.base_sequence, last_seq) {
                        Verdict::Append => {}
                        Verdict::Duplicate(base_offset) => {
                            // A retry of a stored batch: answered with its first offset.
                            tracing::debug!(node_id = self.inner.node, group = %self.group, index = entry.log_id.index, producer_id = h.producer_id,
                                epoch = h.producer_epoch, first_seq = h.base_sequence, last_seq, base_offset, "idempotent batch is a duplicate");
                            return CommandResult::Duplicate { base_offset };
                        }
                        Verdict::Refuse(why) => {
                            // The leader warns of it (the produce path); this says
                            // where in the log, on every replica (RUST_LOG=debug).
                            tracing::debug!(node_id = self.inner.node, group = %self.group, index = entry.log_id.index, producer_id = h.producer_id,
                                epoch = h.producer_epoch, first_seq = h.base_sequence, last_seq, refusal = %why, "idempotent batch refused");
                            return CommandResult::ProducerRefused(why);
                        }
                    }
                }
                let base = self.state.next_offset;
                let iv = IndexValue {
                    log_index: entry.log_id.index,
                    last_offset: base + taken - 1,
                    max_timestamp: h.max_timestamp,
                    bytes: b.len() as u32,
                };
                // A batch without records is never served: not indexed.
                if h.record_count > 0 {
                    w.insert_small(&keys::index(self.group, base), &iv.encode());
                    time_index::note(w, self.group, &mut self.time_newest, iv.max_timestamp, base);
                    self.staged_index.push((base, iv));
                    if let Kind::Partition(r) = &self.kind {
                        r.retained.fetch_add(iv.bytes as u64, Ordering::AcqRel);
                    }
                }
                self.state.next_offset = iv.last_offset + 1;
                if idempotent {
                    let p = self.producers.entry(h.producer_id).or_default();
                    p.record(h.producer_epoch, StoredBatch { first_seq: h.base_sequence, last_seq, base_offset: base }, h.max_timestamp);
                    match encode(p) {
                        // Five batches at most: always small.
                        Ok(v) => w.insert_small(&keys::tagged(self.group, keys::PRODUCER, &h.producer_id.to_be_bytes()), &v),
                        Err(e) => return CommandResult::Rejected(format!("producer state does not encode: {e}")),
                    }
                }
                self.note_epoch(entry.log_id.leader_id.term as i32, base, w);
                CommandResult::Appended { base_offset: base }
            }
            (EntryPayload::Normal(Command::Group(c)), Kind::Partition(_)) => self.apply_group(c, w),
            (EntryPayload::Normal(Command::Trim { log_start_offset }), Kind::Partition(r)) => {
                let r = r.clone();
                match crate::off_runtime(|| self.trim(&r, *log_start_offset, w)) {
                    Ok(()) => CommandResult::Trimmed { log_start_offset: self.state.log_start_offset },
                    Err(e) => CommandResult::Rejected(format!("trim of group {} to {log_start_offset}: {e}", self.group)),
                }
            }
            (EntryPayload::Normal(Command::ExpireProducers { last_before_ms }), Kind::Partition(_)) => {
                let expired: Vec<i64> = self.producers.iter().filter(|(_, p)| p.last_timestamp_ms < *last_before_ms).map(|(pid, _)| *pid).collect();
                for pid in &expired {
                    self.producers.remove(pid);
                    w.remove_small(&keys::tagged(self.group, keys::PRODUCER, &pid.to_be_bytes()));
                }
                if !expired.is_empty() {
                    info!(node_id = self.inner.node, group = %self.group, expired = expired.len(), left = self.producers.len(), last_before_ms, "idempotent producers expired");
                }
                CommandResult::None
            }
            (EntryPayload::Normal(Command::Compact { clean_from, dirty_end, tombstones_before_ms, keys_max, decompressed_bytes_max }), Kind::Partition(_)) => {
                // Recorded here; every replica's cleaner runs it (see `compaction`).
                let job = compaction::Job {
                    clean_from: *clean_from,
                    dirty_end: *dirty_end,
                    tombstones_before_ms: *tombstones_before_ms,
                    keys_max: *keys_max,
                    decompressed_bytes_max: *decompressed_bytes_max,
                    log_index: entry.log_id.index,
                };
                match encode(&job) {
                    Ok(v) => {
                        w.insert_small(&keys::tag(self.group, keys::COMPACTION), &v);
                        self.compaction_queued = true;
                        CommandResult::None
                    }
                    Err(e) => CommandResult::Rejected(format!("compaction job does not encode: {e}")),
                }
            }
            (EntryPayload::Normal(Command::Controller(c)), Kind::Controller(_)) => {
                CommandResult::Controller(self.state.metadata.get_or_insert_with(Default::default).apply(c))
            }
            (EntryPayload::Normal(c), _) => CommandResult::Rejected(format!("{c} does not belong to group {}", self.group)),
        }
    }

    /// Moves the log start up to `to` (never past the high watermark, never
    /// back) and drops the index entries of the batches wholly below it. The
    /// batches' log entries stay until the Raft log is purged.
    fn trim(&mut self, reader: &PartitionReader, to: Offset, w: &mut Writes) -> io::Result<()> {
        let to = to.min(self.state.next_offset);
        let from = self.state.log_start_offset;
        if to <= from {
            return Ok(());
        }
        // Readers see the new start before any index entry goes, so a read
        // below it is refused rather than answered from a later batch.
        reader.log_start.fetch_max(to, Ordering::AcqRel);
        let (mut batches, mut bytes) = (0u64, 0u64);
        let mut gone = |k: &[u8], iv: &IndexValue, w: &mut Writes| {
            if iv.last_offset < to {
                w.remove_small(k);
                bytes += iv.bytes as u64;
                return 1;
            }
            0
        };
        // Committed entries, in sled batches of TRIM_BATCH_KEYS (a trim of
        // millions of batches must not hold them all in one); the applied
        // state lands with the last, so a crash before it replays the trim.
        for kv in self.inner.sm.tree.range(keys::index(self.group, 0)..keys::index(self.group, to)) {
            let (k, v) = kv.map_err(io_err)?;
            batches += gone(&k, &reader.index_value(&v).map_err(io_err)?, w);
            if batches > 0 && batches % TRIM_BATCH_KEYS == 0 {
                w.commit_so_far()?;
            }
        }
        for (base, iv) in self.staged_index.iter().filter(|(base, _)| *base < to) {
            batches += gone(&keys::index(self.group, *base), iv, w);
        }
        time_index::trim(&self.inner, w, self.group, to)?;
        self.state.log_start_offset = to;
        self.segments.trimmed = true;
        // The cleaner takes off what compaction saves: both update in place.
        let left = reader.retained.fetch_update(Ordering::AcqRel, Ordering::Acquire, |r| Some(r.saturating_sub(bytes))).unwrap_or(0).saturating_sub(bytes);
        info!(node_id = self.inner.node, group = %self.group, from, to, batches, bytes, retained_bytes = left, "log start moved");
        Ok(())
    }

    /// Records the first offset of a new leader epoch.
    fn note_epoch(&self, epoch: i32, base: Offset, w: &mut Writes) {
        let Kind::Partition(reader) = &self.kind else { return };
        let mut epochs = reader.epochs.write().unwrap();
        if epochs.last_key_value().is_none_or(|(last, _)| *last < epoch) {
            epochs.insert(epoch, base);
            w.insert_small(&keys::tagged(self.group, keys::EPOCH, &epoch.to_be_bytes()), &encode(&base).expect("an offset encodes"));
        }
    }

    /// Consumer-group commands (offsets partitions). They are idempotent, so
    /// applying one again after a crash changes nothing.
    fn apply_group(&self, cmd: &GroupCommand, w: &mut Writes) -> CommandResult {
        let g = self.group;
        let result = (|| -> io::Result<()> {
            match cmd {
                GroupCommand::Commit { group, offsets } => {
                    for (topic, partition, v) in offsets {
                        w.insert(&keys::offset(g, group, topic, *partition), &encode(v)?)?;
                    }
                }
                GroupCommand::Store { group, record } => {
                    w.insert(&keys::tagged(g, keys::GROUP, group.as_bytes()), &encode(record)?)?;
                }
                GroupCommand::StoreAt { group, record, at_ms } => {
                    w.insert(&keys::tagged(g, keys::GROUP, group.as_bytes()), &encode(record)?)?;
                    w.insert_small(&keys::tagged(g, keys::GROUP_TIME, group.as_bytes()), &at_ms.to_be_bytes());
                }
                GroupCommand::ExpireOffsets { group, offsets } => {
                    // Land earlier commits of this apply first, so they are seen.
                    w.commit_so_far()?;
                    for (topic, partition, committed_at) in offsets {
                        let k = keys::offset(g, group, topic, *partition);
                        let current: Option<CommittedOffset> = self.inner.sm.get(&k)?.map(|v| decode(&v)).transpose()?;
                        if current.is_some_and(|c| c.commit_timestamp_ms == *committed_at) {
                            w.remove(&k)?;
                        }
                    }
                    w.commit_so_far()?;
                    let record: Option<GroupRecord> = self.inner.sm.get(&keys::tagged(g, keys::GROUP, group.as_bytes()))?.map(|v| decode(&v)).transpose()?;
                    let no_offsets = self.inner.sm.tree.scan_prefix(keys::offsets_of(g, group)).next().is_none();
                    if no_offsets && record.is_none_or(|r| r.members.is_empty()) {
                        w.remove(&keys::tagged(g, keys::GROUP, group.as_bytes()))?;
                        w.remove_small(&keys::tagged(g, keys::GROUP_TIME, group.as_bytes()));
                    }
                    info!(node_id = self.inner.node, group = %g, consumer_group = group, expired = offsets.len(), "committed offsets expired (offsets.retention.minutes)");
                }
                GroupCommand::DeleteOffsets { group, offsets } => {
                    for (topic, partition) in offsets {
                        w.remove(&keys::offset(g, group, topic, *partition))?;
                    }
                }
                GroupCommand::Delete { group } => {
                    // Offsets committed earlier in this apply are still in
                    // `w`: land them first, so the scan sees them.
                    w.commit_so_far()?;
                    w.remove(&keys::tagged(g, keys::GROUP, group.as_bytes()))?;
                    w.remove_small(&keys::tagged(g, keys::GROUP_TIME, group.as_bytes()));
                    for k in self.inner.sm.tree.scan_prefix(keys::offsets_of(g, group)).keys() {
                        w.remove(&k.map_err(io_err)?)?;
                    }
                }
                GroupCommand::ForgetTopic { topic } => {
                    w.commit_so_far()?;
                    // Every group's offsets are read: off the async workers.
                    let forgotten = crate::off_runtime(|| -> io::Result<u64> {
                        let mut n = 0;
                        for k in self.inner.sm.tree.scan_prefix(keys::tag(g, keys::OFFSET)).keys() {
                            let k = k.map_err(io_err)?;
                            if keys::parse_any_offset(g, &k).is_some_and(|(_, t, _)| t == *topic) {
                                w.remove(&k)?;
                                n += 1;
                            }
                        }
                        Ok(n)
                    })?;
                    info!(node_id = self.inner.node, group = %g, topic, forgotten, "committed offsets of a deleted topic forgotten");
                }
            }
            Ok(())
        })();
        match result {
            Ok(()) => CommandResult::None,
            Err(e) => CommandResult::Rejected(format!("group {} in {g}: {e}", cmd.group())),
        }
    }

    pub(crate) fn persist_state(&self, w: &mut Writes) -> io::Result<()> {
        if let Kind::Partition(r) = &self.kind {
            w.insert_small(&keys::tag(self.group, keys::SIZE), &r.retained_bytes().to_be_bytes());
        }
        // The controller's state holds all cluster metadata: of any size.
        w.insert(&keys::tag(self.group, keys::STATE), &encode(&self.state)?)
    }
}

impl RaftStateMachine<TypeConfig> for SledStateMachine {
    type SnapshotData = SnapshotData;
    type SnapshotBuilder = SledSnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        Ok((self.state.last_applied, self.state.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + OptionalSend {
        let inner = self.inner.clone();
        let mut w = inner.sm.writes();
        self.staged_index.clear();
        let mut replies = Vec::new();
        let mut applied_bytes = 0u64;
        while let Some((entry, responder)) = entries.try_next().await? {
            // Offsets are assigned in log order: an entry skipped here would
            // shift every later offset on this replica alone. Raft applies
            // in order; say so loudly if it ever does not.
            if let Some(last) = self.state.last_applied.filter(|l| entry.log_id.index != l.index + 1) {
                tracing::error!(node_id = self.inner.node, group = %self.group, last_applied = last.index, got = entry.log_id.index, "entries applied out of order");
            }
            let result = self.apply_one(&entry, &mut w);
            applied_bytes += snapshots::weight(&entry);
            self.state.last_applied = Some(entry.log_id);
            if let Some(r) = responder {
                replies.push((r, result));
            }
        }
        self.persist_state(&mut w)?;
        // Index entries and applied state change atomically; the log entries
        // they point at are already durable (they were committed).
        w.commit()?;
        self.publish();
        if std::mem::take(&mut self.compaction_queued) {
            if let Kind::Partition(r) = &self.kind {
                self.inner.cleaner.submit(r.clone());
            }
        }
        for (r, result) in replies {
            r.send(result);
        }
        self.after_apply(applied_bytes)
    }

    async fn try_create_snapshot_builder(&mut self, force: bool) -> Option<Self::SnapshotBuilder> {
        match self.snapshot_to_build(force) {
            Ok(built) => built.map(|b| SledSnapshotBuilder { built: Ok(b) }),
            Err(e) => Some(SledSnapshotBuilder { built: Err(e) }),
        }
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.try_create_snapshot_builder(true).await.expect("a forced builder")
    }

    async fn install_snapshot(&mut self, meta: &SnapshotMeta, snapshot: SnapshotData) -> Result<(), io::Error> {
        self.install(meta, snapshot.into_inner())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<openraft::alias::SnapshotOf<TypeConfig, SnapshotData>>, io::Error> {
        Ok(self.stored_snapshot()?.map(|(meta, data)| openraft::alias::SnapshotOf::<TypeConfig, SnapshotData> { meta, snapshot: std::io::Cursor::new(data) }))
    }
}

/// A snapshot chosen (and stored) when the builder was made; see `snapshots`.
pub struct SledSnapshotBuilder {
    built: io::Result<(SnapshotMeta, Vec<u8>)>,
}

impl RaftSnapshotBuilder<TypeConfig> for SledSnapshotBuilder {
    type SnapshotData = SnapshotData;

    async fn build_snapshot(&mut self) -> Result<openraft::alias::SnapshotOf<TypeConfig, SnapshotData>, io::Error> {
        let (meta, data) = std::mem::replace(&mut self.built, Err(io::Error::other("snapshot already taken")))?;
        Ok(openraft::alias::SnapshotOf::<TypeConfig, SnapshotData> { meta, snapshot: std::io::Cursor::new(data) })
    }
}

/// Keys starting with `prefix` in `tree`, with their (resolved) values.
fn scan_values<'a>(tree: &'a Chunked, prefix: &[u8]) -> impl Iterator<Item = io::Result<(sled::IVec, sled::IVec)>> + 'a {
    tree.tree.scan_prefix(prefix).map(move |kv| {
        let (k, v) = kv.map_err(io_err)?;
        let v = tree.resolve(&k, v)?;
        Ok((k, v))
    })
}
