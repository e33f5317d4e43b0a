//! Topic configs: every one Kafka 4.x accepts, with Kafka's type, default
//! and validation, and whether Chronik enforces it. DescribeConfigs,
//! CreateTopics and the admin API all go through this table.
//!
//! A config Chronik accepts but does not act on is never silently ignored:
//! its [`Enforcement`] says why (README, "Topic configs"), and the node
//! logs it once the first time a topic sets it.

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;

use crate::config::{ConfigType, Limits};
use crate::log::configs::{compacted, log_append_time, ConfigLookup};
use crate::log::retention::RetentionDefaults;
use crate::log::batch::{BatchPolicy, TimestampRule};


#[derive(Debug, Clone, Copy, PartialEq)]
enum Check {
    /// An integer of the type's width, at least this.
    AtLeast(i64),
    /// A floating point number within the bounds.
    Between(f64, f64),
    /// One of these strings.
    OneOf(&'static [&'static str]),
    /// A comma-separated list of these strings.
    ListOf(&'static [&'static str]),
    /// An integer within the bounds, or one of the listed extras.
    RangeOr(i64, i64, &'static [i64]),
    /// `*`, or `partition:broker` pairs separated by commas.
    ThrottledReplicas,
    Boolean,
}

/// What Chronik does with a config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enforcement {
    Enforced,
    /// Accepted and stored, not acted on yet.
    NotYet(&'static str),
    /// Has no meaning in Chronik's design.
    NotApplicable(&'static str),
}

#[derive(Debug, Clone, Copy)]
pub struct TopicConfigDef {
    pub name: &'static str,
    pub kind: ConfigType,
    /// Kafka's default (for max.message.bytes, the node's message_max_bytes
    /// takes its place: see [`default_value`]).
    pub default: &'static str,
    check: Check,
    pub enforcement: Enforcement,
}

const fn def(name: &'static str, kind: ConfigType, default: &'static str, check: Check, enforcement: Enforcement) -> TopicConfigDef {
    TopicConfigDef { name, kind, default, check, enforcement }
}

use Check::*;
use ConfigType as T;
use Enforcement::*;

const NO_SEGMENTS: &str = "Chronik keeps records in its Raft log, not in segment files";
const JITTER: &str = "segments roll exactly at segment.ms on each replica";
const NO_REMOTE: &str = "tiered storage is not supported";
const FSYNC: &str = "every acknowledged write is already fsynced";

/// Kafka 4.x's topic configs (its LogConfig), sorted by name.
pub const TOPIC_CONFIGS: &[TopicConfigDef] = &[
    def("cleanup.policy", T::List, "delete", ListOf(&["compact", "delete"]), Enforced),
    def("compression.gzip.level", T::Int, "-1", RangeOr(1, 9, &[-1]), NotYet("batches are stored as the producer compressed them")),
    def("compression.lz4.level", T::Int, "9", RangeOr(1, 17, &[]), NotYet("batches are stored as the producer compressed them")),
    def("compression.type", T::String, "producer", OneOf(&["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"]), NotYet("batches are stored as the producer compressed them")),
    def("compression.zstd.level", T::Int, "3", RangeOr(-131072, 22, &[]), NotYet("batches are stored as the producer compressed them")),
    def("delete.retention.ms", T::Long, "86400000", AtLeast(0), Enforced),
    def("file.delete.delay.ms", T::Long, "60000", AtLeast(0), NotApplicable(NO_SEGMENTS)),
    def("flush.messages", T::Long, "9223372036854775807", AtLeast(1), NotApplicable(FSYNC)),
    def("flush.ms", T::Long, "9223372036854775807", AtLeast(0), NotApplicable(FSYNC)),
    def("follower.replication.throttled.replicas", T::List, "", ThrottledReplicas, NotYet("replication is not throttled")),
    def("index.interval.bytes", T::Int, "4096", AtLeast(0), NotApplicable(NO_SEGMENTS)),
    def("leader.replication.throttled.replicas", T::List, "", ThrottledReplicas, NotYet("replication is not throttled")),
    def("local.retention.bytes", T::Long, "-2", AtLeast(-2), NotApplicable(NO_REMOTE)),
    def("local.retention.ms", T::Long, "-2", AtLeast(-2), NotApplicable(NO_REMOTE)),
    def("max.compaction.lag.ms", T::Long, "9223372036854775807", AtLeast(1), Enforced),
    def("max.message.bytes", T::Int, "1048588", AtLeast(0), Enforced),
    def("message.timestamp.after.max.ms", T::Long, "3600000", AtLeast(0), Enforced),
    def("message.timestamp.before.max.ms", T::Long, "9223372036854775807", AtLeast(0), Enforced),
    def("message.timestamp.type", T::String, "CreateTime", OneOf(&["CreateTime", "LogAppendTime"]), Enforced),
    def("min.cleanable.dirty.ratio", T::Double, "0.5", Between(0.0, 1.0), Enforced),
    def("min.compaction.lag.ms", T::Long, "0", AtLeast(0), Enforced),
    def("min.insync.replicas", T::Int, "1", AtLeast(1), NotYet("an acks=all write waits for a Raft majority of the replicas, whatever this asks")),
    def("preallocate", T::Boolean, "false", Boolean, NotApplicable(NO_SEGMENTS)),
    def("remote.log.copy.disable", T::Boolean, "false", Boolean, NotApplicable(NO_REMOTE)),
    def("remote.log.delete.on.disable", T::Boolean, "false", Boolean, NotApplicable(NO_REMOTE)),
    def("remote.storage.enable", T::Boolean, "false", Boolean, NotApplicable(NO_REMOTE)),
    def("retention.bytes", T::Long, "-1", AtLeast(i64::MIN), Enforced),
    def("retention.ms", T::Long, "604800000", AtLeast(-1), Enforced),
    def("segment.bytes", T::Int, "1073741824", AtLeast(1 << 20), Enforced),
    def("segment.index.bytes", T::Int, "10485760", AtLeast(4), NotApplicable(NO_SEGMENTS)),
    def("segment.jitter.ms", T::Long, "0", AtLeast(0), NotYet(JITTER)),
    def("segment.ms", T::Long, "604800000", AtLeast(1), Enforced),
    def("unclean.leader.election.enable", T::Boolean, "false", Boolean, NotApplicable("a Raft group never elects a replica that lacks committed records")),
];

pub fn lookup(name: &str) -> Option<&'static TopicConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.name == name)
}

/// The default of `def` on this node.
pub fn default_value(def: &TopicConfigDef, limits: &Limits, retention: &RetentionDefaults) -> String {
    match def.name {
        "max.message.bytes" => limits.message_max_bytes.to_string(),
        "retention.ms" => retention.ms.to_string(),
        "retention.bytes" => retention.bytes.to_string(),
        "segment.bytes" => retention.segment_bytes.to_string(),
        "segment.ms" => retention.segment_ms.to_string(),
        _ => def.default.to_string(),
    }
}

/// Checks one config as Kafka does: a known name, a value of its type
/// within its bounds.
pub fn validate(key: &str, value: &str) -> Result<(), String> {
    let def = lookup(key).ok_or_else(|| "unknown topic config".to_string())?;
    let int_bits = if def.kind == T::Int { 32 } else { 64 };
    let int = || -> Result<i64, String> {
        let v: i64 = value.trim().parse().map_err(|_| format!("must be a {}", if int_bits == 32 { "32-bit integer" } else { "64-bit integer" }))?;
        if int_bits == 32 && i32::try_from(v).is_err() {
            return Err("must be a 32-bit integer".into());
        }
        Ok(v)
    };
    match def.check {
        AtLeast(min) => match int()? {
            v if v >= min => Ok(()),
            _ => Err(format!("must be at least {min}")),
        },
        RangeOr(lo, hi, extra) => match int()? {
            v if (lo..=hi).contains(&v) || extra.contains(&v) => Ok(()),
            _ => Err(format!("must be within [{lo}, {hi}]{}", if extra.is_empty() { String::new() } else { format!(" or one of {extra:?}") })),
        },
        Between(lo, hi) => match value.trim().parse::<f64>() {
            Ok(v) if (lo..=hi).contains(&v) => Ok(()),
            _ => Err(format!("must be a number within [{lo}, {hi}]")),
        },
        OneOf(allowed) => {
            if allowed.iter().any(|a| a.eq_ignore_ascii_case(value.trim())) {
                Ok(())
            } else {
                Err(format!("must be one of {}", allowed.join(", ")))
            }
        }
        ListOf(allowed) => {
            let items: Vec<&str> = value.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
            match items.iter().find(|i| !allowed.iter().any(|a| a.eq_ignore_ascii_case(i))) {
                Some(bad) => Err(format!("{bad:?} is not one of {}", allowed.join(", "))),
                None => Ok(()),
            }
        }
        Boolean => match value.trim().to_ascii_lowercase().as_str() {
            "true" | "false" => Ok(()),
            _ => Err("must be true or false".into()),
        },
        ThrottledReplicas => {
            let v = value.trim();
            let pair = |p: &str| p.trim().split_once(':').is_some_and(|(a, b)| a.trim().parse::<u32>().is_ok() && b.trim().parse::<u32>().is_ok());
            if v.is_empty() || v == "*" || v.split(',').all(pair) {
                Ok(())
            } else {
                Err("must be *, or partition:broker pairs separated by commas".into())
            }
        }
    }
}

/// Checks a whole set of overrides: each one, and their relations
/// (min.compaction.lag.ms <= max.compaction.lag.ms, as Kafka requires).
pub fn validate_all(configs: &BTreeMap<String, String>) -> Result<(), (String, String, String)> {
    for (k, v) in configs {
        validate(k, v).map_err(|reason| (k.clone(), v.clone(), reason))?;
    }
    let num = |k: &str, d: i64| configs.get(k).and_then(|v| v.trim().parse::<i64>().ok()).unwrap_or(d);
    let (min, max) = (num("min.compaction.lag.ms", 0), num("max.compaction.lag.ms", i64::MAX));
    if min > max {
        return Err(("min.compaction.lag.ms".into(), min.to_string(), format!("is greater than max.compaction.lag.ms ({max})")));
    }
    Ok(())
}

/// Logs, once per config name and process, that a topic set a config
/// Chronik accepts but does not act on.
pub fn note_unenforced(topic: &str, configs: &BTreeMap<String, String>) {
    static NOTED: Mutex<Option<HashSet<&'static str>>> = Mutex::new(None);
    for k in configs.keys() {
        let Some(def) = lookup(k) else { continue };
        let why = match def.enforcement {
            Enforced => continue,
            NotYet(why) | NotApplicable(why) => why,
        };
        let mut noted = NOTED.lock().unwrap();
        if noted.get_or_insert_with(HashSet::new).insert(def.name) {
            tracing::warn!(topic, config = def.name, reason = why, "topic config accepted but not enforced");
        }
    }
}

/// What a batch produced to a topic must satisfy: the topic's configs over
/// the node's bounds (max.message.bytes defaults to message.max.bytes).
pub fn batch_policy(configs: &impl ConfigLookup, limits: &Limits) -> BatchPolicy {
    let num = |key: &str, default: i64| configs.num(key).unwrap_or(default);
    BatchPolicy {
        batch_bytes_max: usize::try_from(num("max.message.bytes", limits.message_max_bytes as i64)).unwrap_or(0),
        decompressed_bytes_max: limits.batch_decompressed_bytes_max,
        timestamps: if log_append_time(configs) {
            TimestampRule::LogAppendTime
        } else {
            TimestampRule::CreateTime {
                before_max_ms: num("message.timestamp.before.max.ms", i64::MAX),
                after_max_ms: num("message.timestamp.after.max.ms", 3_600_000),
            }
        },
        key_required: compacted(configs),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_sorted_and_every_default_is_valid() {
        assert!(TOPIC_CONFIGS.windows(2).all(|w| w[0].name < w[1].name));
        for d in TOPIC_CONFIGS {
            validate(d.name, d.default).unwrap_or_else(|e| panic!("{} default {:?}: {e}", d.name, d.default));
        }
    }

    #[test]
    fn validation_follows_kafka() {
        for (k, v) in [
            ("delete.retention.ms", "0"),
            ("min.cleanable.dirty.ratio", "0.01"),
            ("cleanup.policy", "compact,delete"),
            ("compression.type", "zstd"),
            ("compression.gzip.level", "-1"),
            ("segment.ms", "100"),
            ("unclean.leader.election.enable", "TRUE"),
            ("leader.replication.throttled.replicas", "0:1,1:2"),
            ("retention.bytes", "-5"),
        ] {
            validate(k, v).unwrap_or_else(|e| panic!("{k}={v}: {e}"));
        }
        for (k, v) in [
            ("delete.retention.ms", "-1"),
            ("min.cleanable.dirty.ratio", "1.5"),
            ("cleanup.policy", "archive"),
            ("compression.gzip.level", "0"),
            ("segment.bytes", "1000"),
            ("max.message.bytes", "3000000000"),
            ("unclean.leader.election.enable", "yes"),
            ("message.timestamp.difference.max.ms", "1"),
            ("no.such.config", "1"),
        ] {
            assert!(validate(k, v).is_err(), "{k}={v} accepted");
        }
        let lag: BTreeMap<String, String> = [("min.compaction.lag.ms".into(), "10".into()), ("max.compaction.lag.ms".into(), "5".into())].into();
        assert!(validate_all(&lag).is_err());
    }

    #[test]
    fn the_policy_takes_the_topic_over_the_node() {
        let limits = Limits { message_max_bytes: 5000, ..Default::default() };
        assert_eq!(batch_policy(&BTreeMap::new(), &limits).batch_bytes_max, 5000);
        let c: BTreeMap<String, String> = [("max.message.bytes".into(), "100".into()), ("message.timestamp.type".into(), "LogAppendTime".into()), ("cleanup.policy".into(), "compact".into())].into();
        let p = batch_policy(&c, &limits);
        assert_eq!((p.batch_bytes_max, p.timestamps, p.key_required), (100, TimestampRule::LogAppendTime, true));
    }
}
