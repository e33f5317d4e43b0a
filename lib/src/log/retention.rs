//! Time and size retention: how far a partition's log start may move.
//!
//! Kafka deletes whole segments, oldest first, while the segment's newest
//! record is older than `retention.ms` or the log without it still holds at
//! least `retention.bytes`, and stops at the first segment that may stay.
//! Chronik applies the same rule to record batches, its unit of storage: the
//! log start moves to the end of the last batch that may go. Every replica
//! then applies the resulting `Command::Trim` at the same place in its log.

use crate::log::configs::ConfigLookup;
use crate::Offset;

/// What a topic keeps (None: no bound of that kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Retention {
    /// Batches whose newest timestamp is older than this go (retention.ms).
    pub ms: Option<i64>,
    /// Oldest batches go while the rest still holds this much (retention.bytes).
    pub bytes: Option<u64>,
}

/// Broker-wide defaults (Kafka's log.retention.ms and log.retention.bytes;
/// -1 means unbounded), how often leaders look, and how segments roll
/// (log.segment.bytes, log.roll.ms, offsets.topic.segment.bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionDefaults {
    pub ms: i64,
    pub bytes: i64,
    pub check_interval_ms: u64,
    pub segment_bytes: u64,
    pub segment_ms: i64,
    pub offsets_segment_bytes: u64,
    /// Idempotent producers are forgotten this long after their last batch
    /// (producer.id.expiration.ms).
    pub producer_expiration_ms: i64,
    /// How often leaders look for partitions to compact (log.cleaner.backoff.ms).
    pub cleaner_backoff_ms: u64,
    /// Committed offsets of a group without members expire this long after
    /// it became empty (offsets.retention.minutes, in ms), checked every
    /// `offsets_retention_check_interval_ms`.
    pub offsets_retention_ms: i64,
    pub offsets_retention_check_interval_ms: u64,
}

impl Default for RetentionDefaults {
    fn default() -> Self {
        // Kafka's: 7 days, unbounded size, a look every 5 minutes; segments
        // of 1 GiB or 7 days, 100 MiB for the offsets topic.
        Self {
            ms: 7 * 24 * 3_600_000,
            bytes: -1,
            check_interval_ms: 300_000,
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 3_600_000,
            offsets_segment_bytes: 100 << 20,
            producer_expiration_ms: 86_400_000,
            cleaner_backoff_ms: 15_000,
            offsets_retention_ms: 7 * 24 * 3_600_000,
            offsets_retention_check_interval_ms: 600_000,
        }
    }
}

/// When a replica closes a segment of its Raft log: after `bytes` of
/// appended records or `ms` since the last roll, whichever comes first.
///
/// A segment here is the stretch of Raft log between two checkpoints of the
/// partition's state (see ARCHITECTURE.md, "Segments"). Retention moves the
/// log start batch by batch, but the Raft log (and so the disk) is freed a
/// whole segment at a time, once the log start has passed its end: like
/// Kafka, which never deletes part of a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentRule {
    pub bytes: u64,
    pub ms: i64,
}

impl Default for SegmentRule {
    fn default() -> Self {
        let d = RetentionDefaults::default();
        Self { bytes: d.segment_bytes, ms: d.segment_ms }
    }
}

impl SegmentRule {
    /// A topic's segment.bytes and segment.ms over the broker defaults.
    pub fn of_topic(configs: &impl ConfigLookup, defaults: &RetentionDefaults) -> Self {
        let num = |key: &str| configs.num(key).filter(|v| *v > 0);
        Self {
            bytes: num("segment.bytes").map(|v| v as u64).unwrap_or(defaults.segment_bytes),
            ms: num("segment.ms").unwrap_or(defaults.segment_ms),
        }
    }

    /// Whether a segment holding `bytes`, opened `age_ms` ago, is closed.
    /// An empty segment never is.
    pub fn rolls(&self, bytes: u64, age_ms: i64) -> bool {
        bytes > 0 && (bytes >= self.bytes || age_ms >= self.ms)
    }
}

impl Retention {
    /// A topic's retention from its configs over the broker defaults. A
    /// topic whose cleanup.policy lacks `delete` keeps everything.
    pub fn of_topic(configs: &impl ConfigLookup, defaults: &RetentionDefaults) -> Self {
        let deletes = configs.value("cleanup.policy").is_none_or(|p| p.split(',').any(|x| x.trim().eq_ignore_ascii_case("delete")));
        if !deletes {
            return Self::default();
        }
        let num = |key: &str, default: i64| configs.num(key).unwrap_or(default);
        Self {
            ms: Some(num("retention.ms", defaults.ms)).filter(|v| *v >= 0),
            bytes: u64::try_from(num("retention.bytes", defaults.bytes)).ok(),
        }
    }

    pub fn keeps_everything(&self) -> bool {
        self.ms.is_none() && self.bytes.is_none()
    }
}

/// One retained batch, oldest first, as the partition's index holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSpan {
    pub last_offset: Offset,
    pub max_timestamp: i64,
    pub bytes: u64,
}

/// The log start offset `rule` allows at `now_ms` for a log that holds
/// `retained_bytes` in `batches` (oldest first), or None if nothing may go.
pub fn trim_point(batches: impl IntoIterator<Item = BatchSpan>, retained_bytes: u64, rule: &Retention, now_ms: i64) -> Option<Offset> {
    let cutoff = rule.ms.map(|ms| now_ms.saturating_sub(ms));
    let mut size = retained_bytes;
    let mut point = None;
    for b in batches {
        let expired = cutoff.is_some_and(|c| b.max_timestamp < c);
        let over = rule.bytes.is_some_and(|r| size.saturating_sub(b.bytes) >= r && size >= b.bytes);
        if !(expired || over) {
            break;
        }
        size = size.saturating_sub(b.bytes);
        point = Some(b.last_offset + 1);
    }
    point
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn spans(ts: &[i64]) -> Vec<BatchSpan> {
        // Batches of 10 records and 100 bytes each.
        ts.iter().enumerate().map(|(i, &t)| BatchSpan { last_offset: i as i64 * 10 + 9, max_timestamp: t, bytes: 100 }).collect()
    }

    #[test]
    fn time_retention_stops_at_the_first_batch_that_may_stay() {
        let rule = Retention { ms: Some(1000), bytes: None };
        // now 5000: cutoff 4000. The third batch is new, the fourth old again.
        let b = spans(&[1000, 3999, 4000, 100]);
        assert_eq!(trim_point(b.clone(), 400, &rule, 5000), Some(20));
        assert_eq!(trim_point(b, 400, &rule, 2000), None, "a batch exactly at the cutoff stays");
        // Everything expired: the log start reaches the end.
        assert_eq!(trim_point(spans(&[1, 2]), 200, &rule, 1_000_000), Some(20));
    }

    #[test]
    fn size_retention_keeps_at_least_the_bound() {
        let rule = Retention { ms: None, bytes: Some(250) };
        let b = spans(&[0, 0, 0, 0, 0]);
        // 500 bytes: dropping two leaves 300 >= 250, a third would leave 200.
        assert_eq!(trim_point(b.clone(), 500, &rule, 0), Some(20));
        assert_eq!(trim_point(b.clone(), 250, &rule, 0), None);
        assert_eq!(trim_point(b, 500, &Retention { ms: None, bytes: Some(0) }, 0), Some(50));
    }

    #[test]
    fn either_bound_deletes() {
        let rule = Retention { ms: Some(1000), bytes: Some(300) };
        // Size lets the first go, time the second; the third is new and
        // the 300 bytes left are within size.
        let b = spans(&[5000, 1000, 5000, 5000, 5000]);
        assert_eq!(trim_point(b, 500, &rule, 5500), Some(20));
    }

    #[test]
    fn topic_configs_override_the_broker_and_compaction_keeps_everything() {
        let d = RetentionDefaults { ms: 60_000, bytes: -1, check_interval_ms: 1, ..Default::default() };
        let c = |kv: &[(&str, &str)]| kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>();
        assert_eq!(Retention::of_topic(&c(&[]), &d), Retention { ms: Some(60_000), bytes: None });
        assert_eq!(Retention::of_topic(&c(&[("retention.ms", "-1"), ("retention.bytes", "10")]), &d), Retention { ms: None, bytes: Some(10) });
        assert!(Retention::of_topic(&c(&[("cleanup.policy", "compact")]), &d).keeps_everything());
        assert_eq!(Retention::of_topic(&c(&[("cleanup.policy", "compact,delete")]), &d).ms, Some(60_000));
    }

    #[test]
    fn segments_roll_by_size_or_age_and_never_empty() {
        let d = RetentionDefaults { segment_bytes: 1000, segment_ms: 60_000, ..Default::default() };
        let c: BTreeMap<String, String> = [("segment.ms".to_string(), "10".to_string())].into();
        assert_eq!(SegmentRule::of_topic(&BTreeMap::new(), &d), SegmentRule { bytes: 1000, ms: 60_000 });
        let rule = SegmentRule::of_topic(&c, &d);
        assert_eq!(rule, SegmentRule { bytes: 1000, ms: 10 });
        assert!(!rule.rolls(0, 1_000_000), "an empty segment stays open");
        assert!(rule.rolls(1, 10) && rule.rolls(1000, 0));
        assert!(!rule.rolls(999, 9));
    }
}
