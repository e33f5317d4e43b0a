//! Log compaction (cleanup.policy=compact): which records survive, and the
//! batches rewritten without the others. Pure functions over batches; the
//! storage engine runs them on every replica with the same inputs (the
//! replicated `Command::Compact`), so every replica keeps the same bytes.
//!
//! Kafka's rules: a record survives unless a later record in the compacted
//! range has its key; a record without a key does not survive; a tombstone
//! (null value) that is the latest of its key survives until it is
//! `delete.retention.ms` old. Offsets never change: a batch keeps its base
//! offset and lastOffsetDelta (so the next offset stays where it was, as
//! Kafka's cleaner keeps it), whatever records it loses, and a batch that
//! loses them all stays as a header without records.
//!
//! The keys of the dirty part of the log (written since the last
//! compaction) are held in a [`KeyMap`] of 16-byte SHA-256 prefixes (Kafka
//! uses MD5 the same way), at most `keys_max` of them: the dirty part
//! compacted at once ends where the map would overflow.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

use super::batch::{self, BatchError, BatchHeader, HEADER_LEN};
use super::compression;
use super::records::{self, RawRecord};
use crate::log::configs::{self, ConfigLookup};
use crate::Offset;

/// When a topic's partitions are compacted (its cleanup.policy has
/// `compact`), from Kafka's topic configs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    /// min.cleanable.dirty.ratio: the share of the log written since the
    /// last compaction that makes the next one due.
    pub min_dirty_ratio: f64,
    /// min.compaction.lag.ms: newer batches are left alone.
    pub min_lag_ms: i64,
    /// max.compaction.lag.ms: a batch older than this is compacted whatever
    /// the ratio, open segment or not.
    pub max_lag_ms: i64,
    /// delete.retention.ms: how long a tombstone that is the latest of its
    /// key stays.
    pub delete_retention_ms: i64,
}

impl Policy {
    /// The topic's policy, or None if it is not compacted.
    pub fn of_topic(configs: &impl ConfigLookup) -> Option<Self> {
        if !configs::compacted(configs) {
            return None;
        }
        Some(Self {
            min_dirty_ratio: configs.value("min.cleanable.dirty.ratio").and_then(|v| v.trim().parse().ok()).unwrap_or(0.5),
            min_lag_ms: configs.num("min.compaction.lag.ms").unwrap_or(0).max(0),
            max_lag_ms: configs.num("max.compaction.lag.ms").unwrap_or(i64::MAX).max(1),
            delete_retention_ms: configs.num("delete.retention.ms").unwrap_or(86_400_000).max(0),
        })
    }

    /// Where a compaction due now would end (the first offset it leaves
    /// alone), or None if none is due: none is under way, there is dirty
    /// data, and it is at least `min_dirty_ratio` of the cleanable log or
    /// its oldest batch is past `max_lag_ms`.
    pub fn due(&self, view: &CompactionView, now_ms: i64) -> Option<Offset> {
        if view.pending {
            return None;
        }
        let overdue = view.first_dirty_timestamp.is_some_and(|t| t <= now_ms.saturating_sub(self.max_lag_ms));
        let end = if overdue { view.lag_end } else { view.closed_end.min(view.lag_end) };
        if end <= view.cleaned_end || (!overdue && view.dirty_bytes == 0) {
            return None;
        }
        let ratio = view.dirty_bytes as f64 / (view.clean_bytes + view.dirty_bytes) as f64;
        (overdue || ratio >= self.min_dirty_ratio).then_some(end)
    }
}

/// What a compaction keeps and drops: the same on every replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// Tombstones timestamped before this go (now - delete.retention.ms,
    /// when the compaction was decided).
    pub tombstones_before_ms: i64,
    /// Records may inflate to at most this when decompressed.
    pub decompressed_bytes_max: usize,
}

pub type KeyHash = [u8; 16];

pub fn key_hash(key: &[u8]) -> KeyHash {
    let d = Sha256::digest(key);
    d[..16].try_into().expect("a SHA-256 digest has 32 bytes")
}

/// The latest offset of each key of the dirty part of the log.
#[derive(Debug, Default)]
pub struct KeyMap {
    latest: HashMap<KeyHash, Offset>,
    keys_max: usize,
}

impl KeyMap {
    pub fn new(keys_max: usize) -> Self {
        Self { latest: HashMap::new(), keys_max }
    }

    pub fn len(&self) -> usize {
        self.latest.len()
    }

    pub fn is_empty(&self) -> bool {
        self.latest.is_empty()
    }

    /// Adds the keys of one batch (at `base_offset`), or nothing and false if
    /// they would take the map past its bound (the dirty part then ends
    /// before this batch; a first batch is always taken).
    pub fn add_batch(&mut self, stored: &[u8], base_offset: Offset, decompressed_bytes_max: usize) -> Result<bool, BatchError> {
        let (h, body) = decompressed(stored, decompressed_bytes_max)?;
        let recs = records::split(&body, h.base_timestamp)?;
        let new_keys = recs.iter().filter_map(|r| r.key).map(key_hash).filter(|k| !self.latest.contains_key(k)).count();
        if !self.latest.is_empty() && self.latest.len() + new_keys > self.keys_max {
            return Ok(false);
        }
        for r in recs {
            if let Some(k) = r.key {
                let offset = base_offset + r.offset_delta as i64;
                let e = self.latest.entry(key_hash(k)).or_insert(offset);
                *e = (*e).max(offset);
            }
        }
        Ok(true)
    }

    fn superseded(&self, key: &[u8], offset: Offset) -> bool {
        self.latest.get(&key_hash(key)).is_some_and(|latest| *latest > offset)
    }
}

/// The batch's header and its records, decompressed if need be.
fn decompressed(stored: &[u8], bytes_max: usize) -> Result<(BatchHeader, Vec<u8>), BatchError> {
    let h = batch::parse_header(stored)?;
    let body = &stored[HEADER_LEN..];
    let records = match h.compression() {
        compression::NONE => body.to_vec(),
        codec => compression::inflate_all(codec, body, bytes_max)?,
    };
    Ok((h, records))
}

/// Whether `r` (in a batch at `base_offset`) survives.
fn survives(r: &RawRecord, h: &BatchHeader, base_offset: Offset, map: &KeyMap, rule: &Rule) -> bool {
    let Some(key) = r.key else { return false };
    if map.superseded(key, base_offset + r.offset_delta as i64) {
        return false;
    }
    // A LogAppendTime batch's records take the batch's time.
    let timestamp = if h.attributes & 0x08 != 0 { h.max_timestamp } else { r.timestamp };
    !(r.tombstone && timestamp < rule.tombstones_before_ms)
}

/// What compacting one batch did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compacted {
    /// Every record survives: the batch stays as it is.
    Unchanged,
    /// The batch without the records that go (possibly none left).
    Rewritten { batch: Vec<u8>, records: i32, max_timestamp: i64 },
}

/// Compacts one stored batch (its base offset is `base_offset`; stored
/// batches carry 0 there) against the dirty part's keys.
pub fn compact_batch(stored: &[u8], base_offset: Offset, map: &KeyMap, rule: &Rule) -> Result<Compacted, BatchError> {
    let (h, body) = decompressed(stored, rule.decompressed_bytes_max)?;
    if h.is_control() || h.is_transactional() {
        // Chronik writes no transactions; should one appear, it stays whole.
        return Ok(Compacted::Unchanged);
    }
    let recs = records::split(&body, h.base_timestamp)?;
    let kept: Vec<&RawRecord> = recs.iter().filter(|r| survives(r, &h, base_offset, map, rule)).collect();
    if kept.len() == recs.len() {
        return Ok(Compacted::Unchanged);
    }
    let log_append_time = h.attributes & 0x08 != 0;
    let max_timestamp = match kept.iter().map(|r| r.timestamp).max() {
        Some(t) if !log_append_time => t,
        _ => h.max_timestamp,
    };
    let records: Vec<u8> = kept.iter().flat_map(|r| r.bytes.iter().copied()).collect();
    let payload = match h.compression() {
        compression::NONE => records,
        codec => compression::deflate(codec, &records, compression::is_xerial(&stored[HEADER_LEN..]))?,
    };
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&stored[..HEADER_LEN]);
    out.extend_from_slice(&payload);
    let batch_length = i32::try_from(out.len() - 12).expect("a compacted batch is no larger than the original");
    out[8..12].copy_from_slice(&batch_length.to_be_bytes());
    out[35..43].copy_from_slice(&max_timestamp.to_be_bytes());
    out[57..61].copy_from_slice(&(kept.len() as i32).to_be_bytes());
    batch::recrc(&mut out);
    Ok(Compacted::Rewritten { batch: out, records: kept.len() as i32, max_timestamp })
}

/// What the leader needs to decide whether to compact a partition (see
/// `compaction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CompactionView {
    /// Where this replica's last compaction ended: below it, no two records
    /// share a key (the clean part).
    pub cleaned_end: Offset,
    /// A compaction is under way here.
    pub pending: bool,
    /// The end of the last closed segment: compaction leaves the open one
    /// alone (as Kafka leaves its active segment).
    pub closed_end: Offset,
    /// The first offset of a batch newer than min.compaction.lag.ms (the
    /// high watermark if none is).
    pub lag_end: Offset,
    /// Bytes from the log start to `cleaned_end`, and from there to
    /// min(`closed_end`, `lag_end`).
    pub clean_bytes: u64,
    pub dirty_bytes: u64,
    /// The newest timestamp of the oldest dirty batch (max.compaction.lag.ms).
    pub first_dirty_timestamp: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::testing::keyed_batch as batch;

    const RULE: Rule = Rule { tombstones_before_ms: 0, decompressed_bytes_max: 1 << 20 };

    /// (key, value) of each record of a stored batch.
    fn contents(b: &[u8]) -> Vec<(i32, Option<String>, Option<String>)> {
        let (h, body) = decompressed(b, 1 << 20).unwrap();
        let s = |x: Option<&[u8]>| x.map(|k| String::from_utf8(k.to_vec()).unwrap());
        records::split(&body, h.base_timestamp)
            .unwrap()
            .iter()
            .map(|r| {
                // The value (two bytes here) comes before one header (h, null).
                let value = (!r.tombstone).then(|| String::from_utf8_lossy(&r.bytes[r.bytes.len() - 6..r.bytes.len() - 4]).into_owned());
                (r.offset_delta, s(r.key), value)
            })
            .collect()
    }

    #[test]
    fn the_latest_record_of_each_key_survives_with_its_offset() {
        // Two batches: offsets 0..3 and 10..12.
        let b0 = batch(&[(Some("a"), Some("a1"), 0), (Some("b"), Some("b1"), 1), (Some("a"), Some("a2"), 2)], compression::NONE);
        let b1 = batch(&[(Some("b"), Some("b2"), 0), (Some("c"), Some("c1"), 1)], compression::NONE);
        let mut map = KeyMap::new(100);
        assert!(map.add_batch(&b0, 0, 1 << 20).unwrap() && map.add_batch(&b1, 10, 1 << 20).unwrap());
        assert_eq!(map.len(), 3);
        let Compacted::Rewritten { batch: c0, records, .. } = compact_batch(&b0, 0, &map, &RULE).unwrap() else { panic!("b0 loses records") };
        assert_eq!(records, 1);
        assert_eq!(contents(&c0), vec![(2, Some("a".into()), Some("a2".into()))], "a2 keeps its offset delta 2");
        let h = batch::parse_header(&c0).unwrap();
        assert_eq!((h.last_offset_delta, h.record_count), (2, 1), "the next offset stays where it was");
        assert_eq!(compact_batch(&b1, 10, &map, &RULE).unwrap(), Compacted::Unchanged);
        // The rewritten batch is one Kafka accepts (CRC, lengths, records).
        let summary = records::walk(&h, &c0, 1 << 20, |_| Ok(std::ops::ControlFlow::Continue(()))).unwrap();
        assert_eq!(summary.records, 1);
        assert_eq!(crc32c::crc32c(&c0[21..]), h.crc);
        // Compacting again changes nothing.
        assert_eq!(compact_batch(&c0, 0, &map, &RULE).unwrap(), Compacted::Unchanged);
    }

    #[test]
    fn tombstones_go_once_old_enough_and_keyless_records_go() {
        // Base timestamp 1000: the tombstone of b is at 1005.
        let b = batch(&[(Some("a"), Some("a1"), 0), (Some("b"), None, 5), (None, Some("nk"), 6)], compression::NONE);
        let mut map = KeyMap::new(100);
        map.add_batch(&b, 0, 1 << 20).unwrap();
        let keep = Rule { tombstones_before_ms: 1005, ..RULE };
        let Compacted::Rewritten { batch: c, .. } = compact_batch(&b, 0, &map, &keep).unwrap() else { panic!() };
        assert_eq!(contents(&c), vec![(0, Some("a".into()), Some("a1".into())), (1, Some("b".into()), None)], "a fresh tombstone stays");
        let drop = Rule { tombstones_before_ms: 1006, ..RULE };
        let Compacted::Rewritten { batch: c, max_timestamp, .. } = compact_batch(&b, 0, &map, &drop).unwrap() else { panic!() };
        assert_eq!(contents(&c), vec![(0, Some("a".into()), Some("a1".into()))]);
        assert_eq!(max_timestamp, 1000);
    }

    #[test]
    fn a_batch_that_loses_every_record_stays_as_a_header() {
        let b0 = batch(&[(Some("a"), Some("a1"), 0), (Some("a"), Some("a2"), 1)], compression::NONE);
        let b1 = batch(&[(Some("a"), Some("a3"), 0)], compression::NONE);
        let mut map = KeyMap::new(10);
        map.add_batch(&b0, 0, 1 << 20).unwrap();
        map.add_batch(&b1, 2, 1 << 20).unwrap();
        let Compacted::Rewritten { batch: c, records, .. } = compact_batch(&b0, 0, &map, &RULE).unwrap() else { panic!() };
        assert_eq!((records, c.len()), (0, HEADER_LEN));
        let h = batch::parse_header(&c).unwrap();
        assert_eq!((h.last_offset_delta, h.record_count, batch::next_offset(&c)), (1, 0, Some(2)));
    }

    #[test]
    fn compressed_batches_are_recompressed_with_their_codec() {
        for codec in [compression::GZIP, compression::SNAPPY, compression::LZ4, compression::ZSTD] {
            let b = batch(&[(Some("a"), Some("a1"), 0), (Some("a"), Some("a2"), 1), (Some("b"), Some("b1"), 2)], codec);
            let mut map = KeyMap::new(10);
            map.add_batch(&b, 0, 1 << 20).unwrap();
            let Compacted::Rewritten { batch: c, .. } = compact_batch(&b, 0, &map, &RULE).unwrap() else { panic!() };
            let h = batch::parse_header(&c).unwrap();
            assert_eq!(h.compression(), codec);
            assert_eq!(contents(&c), vec![(1, Some("a".into()), Some("a2".into())), (2, Some("b".into()), Some("b1".into()))], "{codec}");
        }
    }

    #[test]
    fn a_compaction_is_due_by_ratio_or_lag() {
        let configs: std::collections::BTreeMap<String, String> =
            [("cleanup.policy", "compact,delete"), ("min.cleanable.dirty.ratio", "0.4"), ("max.compaction.lag.ms", "1000")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        let p = Policy::of_topic(&configs).unwrap();
        assert_eq!((p.min_lag_ms, p.delete_retention_ms), (0, 86_400_000));
        assert!(Policy::of_topic(&std::collections::BTreeMap::new()).is_none(), "delete only");
        let view = CompactionView { cleaned_end: 100, closed_end: 200, lag_end: 300, clean_bytes: 600, dirty_bytes: 300, first_dirty_timestamp: Some(5000), pending: false };
        assert_eq!(p.due(&view, 5500), None, "a third dirty, under 0.4");
        assert_eq!(p.due(&CompactionView { dirty_bytes: 400, ..view }, 5500), Some(200), "the open segment stays");
        assert_eq!(p.due(&view, 6000), Some(300), "overdue: the open segment too");
        assert_eq!(p.due(&CompactionView { pending: true, dirty_bytes: 400, ..view }, 5500), None);
        assert_eq!(p.due(&CompactionView { closed_end: 100, dirty_bytes: 400, ..view }, 5500), None, "nothing closed to clean");
    }

    #[test]
    fn the_key_map_stops_at_its_bound_between_batches() {
        let b0 = batch(&[(Some("a"), Some("a1"), 0), (Some("b"), Some("b1"), 0)], compression::NONE);
        let b1 = batch(&[(Some("a"), Some("a2"), 0), (Some("c"), Some("c1"), 0)], compression::NONE);
        let mut map = KeyMap::new(2);
        assert!(map.add_batch(&b0, 0, 1 << 20).unwrap());
        assert!(!map.add_batch(&b1, 2, 1 << 20).unwrap(), "c would be a third key");
        assert_eq!(map.len(), 2);
        // A first batch is always taken, whatever its keys.
        assert!(KeyMap::new(1).add_batch(&b0, 0, 1 << 20).unwrap());
    }
}
