//! Configs that change while the cluster runs: a topic's own configs and the
//! broker configs that serve as every topic's defaults (Kafka's dynamic
//! broker configs, per node or cluster-wide). Both live in the controller's
//! metadata, so a change is replicated to every node and applies without a
//! restart (retention, segments, batch rules read them on every use).
//!
//! A topic config's value comes from, in order: the topic itself
//! (DYNAMIC_TOPIC_CONFIG), a dynamic config of this node
//! (DYNAMIC_BROKER_CONFIG), a cluster-wide dynamic default
//! (DYNAMIC_DEFAULT_BROKER_CONFIG), the node's flags or TOML
//! (STATIC_BROKER_CONFIG), and Kafka's default (DEFAULT_CONFIG).

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::cluster::topic_config;
use crate::config::ConfigType;
use crate::log::configs::ConfigLookup;
use crate::NodeId;

/// What a config change is about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConfigResource {
    Topic(String),
    /// One node's broker configs, or (None) the cluster-wide defaults.
    Broker(Option<NodeId>),
}

impl std::fmt::Display for ConfigResource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigResource::Topic(t) => write!(f, "topic {t}"),
            ConfigResource::Broker(Some(n)) => write!(f, "broker {n}"),
            ConfigResource::Broker(None) => write!(f, "the cluster-wide broker defaults"),
        }
    }
}

/// One change to a resource's configs (IncrementalAlterConfigs' operations).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConfigOp {
    Set(String, String),
    Delete(String),
    /// Adds items to a list config (a no-op for those already there).
    Append(String, String),
    /// Removes items from a list config.
    Subtract(String, String),
}

impl ConfigOp {
    pub fn key(&self) -> &str {
        match self {
            ConfigOp::Set(k, _) | ConfigOp::Delete(k) | ConfigOp::Append(k, _) | ConfigOp::Subtract(k, _) => k,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ConfigChangeError {
    #[error("invalid config {key}={value:?} for {resource}: {reason}")]
    Invalid { resource: String, key: String, value: String, reason: String },
    #[error("{0}")]
    Request(String),
}

/// A broker config that may change at runtime: the default of topic config
/// `topic`, in that config's unit after multiplying by `scale` (hours and
/// minutes to milliseconds).
#[derive(Debug, Clone, Copy)]
pub struct BrokerConfigDef {
    pub name: &'static str,
    pub topic: &'static str,
    pub scale: i64,
    pub kind: ConfigType,
}

const fn broker(name: &'static str, topic: &'static str, scale: i64, kind: ConfigType) -> BrokerConfigDef {
    BrokerConfigDef { name, topic, scale, kind }
}

/// Kafka's dynamically updatable broker configs that are topic defaults, in
/// Kafka's order of precedence among synonyms (log.retention.ms before
/// .minutes before .hours).
pub const BROKER_CONFIGS: &[BrokerConfigDef] = &[
    broker("log.retention.ms", "retention.ms", 1, ConfigType::Long),
    broker("log.retention.minutes", "retention.ms", 60_000, ConfigType::Int),
    broker("log.retention.hours", "retention.ms", 3_600_000, ConfigType::Int),
    broker("log.retention.bytes", "retention.bytes", 1, ConfigType::Long),
    broker("log.segment.bytes", "segment.bytes", 1, ConfigType::Int),
    broker("log.roll.ms", "segment.ms", 1, ConfigType::Long),
    broker("log.roll.hours", "segment.ms", 3_600_000, ConfigType::Int),
    broker("log.roll.jitter.ms", "segment.jitter.ms", 1, ConfigType::Long),
    broker("log.cleanup.policy", "cleanup.policy", 1, ConfigType::List),
    broker("log.cleaner.delete.retention.ms", "delete.retention.ms", 1, ConfigType::Long),
    broker("log.cleaner.min.compaction.lag.ms", "min.compaction.lag.ms", 1, ConfigType::Long),
    broker("log.cleaner.max.compaction.lag.ms", "max.compaction.lag.ms", 1, ConfigType::Long),
    broker("log.cleaner.min.cleanable.ratio", "min.cleanable.dirty.ratio", 1, ConfigType::Double),
    broker("message.max.bytes", "max.message.bytes", 1, ConfigType::Int),
    broker("log.message.timestamp.type", "message.timestamp.type", 1, ConfigType::String),
    broker("log.message.timestamp.before.max.ms", "message.timestamp.before.max.ms", 1, ConfigType::Long),
    broker("log.message.timestamp.after.max.ms", "message.timestamp.after.max.ms", 1, ConfigType::Long),
    broker("compression.type", "compression.type", 1, ConfigType::String),
    broker("min.insync.replicas", "min.insync.replicas", 1, ConfigType::Int),
    // Replication throttles (bytes/s), set and cleared by
    // kafka-reassign-partitions.sh: accepted and reported, not enforced yet
    // (no topic synonym).
    broker("leader.replication.throttled.rate", "", 1, ConfigType::Long),
    broker("follower.replication.throttled.rate", "", 1, ConfigType::Long),
    broker("replica.alter.log.dirs.io.max.bytes.per.second", "", 1, ConfigType::Long),
];

pub fn broker_config(name: &str) -> Option<&'static BrokerConfigDef> {
    BROKER_CONFIGS.iter().find(|d| d.name == name)
}

/// The broker configs (in precedence order) whose value is `topic_key`'s default.
pub fn synonyms(topic_key: &str) -> impl Iterator<Item = &'static BrokerConfigDef> + '_ {
    BROKER_CONFIGS.iter().filter(move |d| d.topic == topic_key)
}

impl BrokerConfigDef {
    /// The topic config's value for a broker value (checked on the way in).
    pub fn to_topic_value(&self, value: &str) -> String {
        if self.scale == 1 {
            return value.to_string();
        }
        value.trim().parse::<i64>().map(|v| if v < 0 { v } else { v.saturating_mul(self.scale) }.to_string()).unwrap_or_else(|_| value.to_string())
    }

    /// Checks a value as Kafka does: that of its topic config, in this unit.
    pub fn validate(&self, value: &str) -> Result<(), String> {
        if self.topic.is_empty() {
            let v: i64 = value.trim().parse().map_err(|_| "must be an integer".to_string())?;
            tracing::warn!(config = self.name, value = v, "broker config accepted but not enforced: replication is not throttled");
            return if v >= 0 { Ok(()) } else { Err("must be at least 0".into()) };
        }
        if self.scale != 1 {
            let v: i64 = value.trim().parse().map_err(|_| "must be an integer".to_string())?;
            if i32::try_from(v).is_err() {
                return Err("must be a 32-bit integer".into());
            }
        }
        topic_config::validate(self.topic, &self.to_topic_value(value))
    }
}

/// Where a config's value came from (DescribeConfigs' config_source).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    DynamicTopic = 1,
    DynamicBroker = 2,
    DynamicDefaultBroker = 3,
    StaticBroker = 4,
    Default = 5,
}

/// Dynamic broker configs, as the controller holds them: per node, and
/// cluster-wide under None.
pub type BrokerConfigs = BTreeMap<Option<NodeId>, BTreeMap<String, String>>;

/// [`BrokerConfigs`] as a list of (node, configs) pairs: JSON map keys must
/// be strings, and None is not one. (In bincode a map and a list of pairs
/// are the same bytes.)
pub mod as_pairs {
    use serde::{Deserialize, Deserializer, Serializer};

    use super::BrokerConfigs;

    pub fn serialize<S: Serializer>(c: &BrokerConfigs, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(c.iter())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BrokerConfigs, D::Error> {
        Ok(Vec::<(Option<super::NodeId>, std::collections::BTreeMap<String, String>)>::deserialize(d)?.into_iter().collect())
    }
}

/// A topic's configs as they apply on one node: its own, then the dynamic
/// broker defaults (this node's, then the cluster's). What none of them
/// sets falls to the node's static defaults, as before.
#[derive(Clone, Copy)]
pub struct EffectiveConfigs<'a> {
    pub topic: &'a BTreeMap<String, String>,
    pub node: Option<&'a BTreeMap<String, String>>,
    pub cluster: Option<&'a BTreeMap<String, String>>,
}

impl<'a> EffectiveConfigs<'a> {
    pub fn new(topic: &'a BTreeMap<String, String>, brokers: &'a BrokerConfigs, node: NodeId) -> Self {
        Self { topic, node: brokers.get(&Some(node)), cluster: brokers.get(&None) }
    }

    /// The value and where it came from, if a topic or dynamic broker config sets it.
    pub fn lookup(&self, key: &str) -> Option<(Cow<'a, str>, ConfigSource)> {
        if let Some(v) = self.topic.get(key) {
            return Some((Cow::Borrowed(v.as_str()), ConfigSource::DynamicTopic));
        }
        for (level, source) in [(self.node, ConfigSource::DynamicBroker), (self.cluster, ConfigSource::DynamicDefaultBroker)] {
            let Some(level) = level else { continue };
            if let Some((def, v)) = synonyms(key).find_map(|d| level.get(d.name).map(|v| (d, v))) {
                return Some((Cow::Owned(def.to_topic_value(v)), source));
            }
        }
        None
    }
}

impl ConfigLookup for EffectiveConfigs<'_> {
    fn value(&self, key: &str) -> Option<Cow<'_, str>> {
        self.lookup(key).map(|(v, _)| v)
    }
}

/// Applies `ops` to `current`, checking every key and value with `check`
/// (which names the problem). `replace` (AlterConfigs) starts from nothing:
/// whatever the request does not set goes back to its default.
pub fn apply_ops(
    current: &BTreeMap<String, String>,
    ops: &[ConfigOp],
    replace: bool,
    check: impl Fn(&str, &str) -> Result<(), String>,
    list_key: impl Fn(&str) -> bool,
    resource: &ConfigResource,
) -> Result<BTreeMap<String, String>, ConfigChangeError> {
    let invalid = |key: &str, value: &str, reason: String| ConfigChangeError::Invalid {
        resource: resource.to_string(),
        key: key.to_string(),
        value: value.to_string(),
        reason,
    };
    let mut keys_seen = std::collections::HashSet::new();
    if let Some(dup) = ops.iter().map(ConfigOp::key).find(|k| !keys_seen.insert(*k)) {
        return Err(ConfigChangeError::Request(format!("config {dup} appears more than once for {resource}")));
    }
    let mut out = if replace { BTreeMap::new() } else { current.clone() };
    for op in ops {
        let items = |v: &str| v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect::<Vec<_>>();
        match op {
            ConfigOp::Set(k, v) => {
                check(k, v).map_err(|r| invalid(k, v, r))?;
                out.insert(k.clone(), v.clone());
            }
            ConfigOp::Delete(k) => {
                // A deletion names a config; only its name is checked.
                check(k, "").map_err(|r| invalid(k, "", r))?;
                out.remove(k);
            }
            ConfigOp::Append(k, v) | ConfigOp::Subtract(k, v) => {
                if !list_key(k) {
                    return Err(invalid(k, v, "is not a list: APPEND and SUBTRACT apply to lists only".into()));
                }
                let mut list = out.get(k).map(|c| items(c)).unwrap_or_default();
                let add = matches!(op, ConfigOp::Append(..));
                for item in items(v) {
                    if add && !list.contains(&item) {
                        list.push(item);
                    } else if !add {
                        list.retain(|x| *x != item);
                    }
                }
                let joined = list.join(",");
                check(k, &joined).map_err(|r| invalid(k, &joined, r))?;
                out.insert(k.clone(), joined);
            }
        }
    }
    Ok(out)
}

/// Checks a topic config for a change (`""` for a deletion: only the name).
pub fn check_topic_config(key: &str, value: &str) -> Result<(), String> {
    if topic_config::lookup(key).is_none() {
        return Err("unknown topic config".into());
    }
    if value.is_empty() {
        return Ok(());
    }
    topic_config::validate(key, value)
}

/// Checks a broker config for a change: only those in [`BROKER_CONFIGS`]
/// may change at runtime.
pub fn check_broker_config(key: &str, value: &str) -> Result<(), String> {
    let Some(def) = broker_config(key) else {
        return Err(format!(
            "unknown, or not a broker config that changes at runtime here (these do: {})",
            BROKER_CONFIGS.iter().map(|d| d.name).collect::<Vec<_>>().join(", ")
        ));
    };
    if value.is_empty() {
        return Ok(());
    }
    def.validate(value)
}

pub fn is_topic_list(key: &str) -> bool {
    topic_config::lookup(key).is_some_and(|d| d.kind == ConfigType::List)
}

pub fn is_broker_list(key: &str) -> bool {
    broker_config(key).is_some_and(|d| d.kind == ConfigType::List)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn a_topic_config_comes_from_the_topic_then_the_node_then_the_cluster() {
        let topic = map(&[("retention.bytes", "10")]);
        let mut brokers = BrokerConfigs::new();
        brokers.insert(None, map(&[("log.retention.hours", "2"), ("log.segment.bytes", "2000000")]));
        brokers.insert(Some(7), map(&[("log.retention.minutes", "3")]));
        let on7 = EffectiveConfigs::new(&topic, &brokers, 7);
        let on8 = EffectiveConfigs::new(&topic, &brokers, 8);
        assert_eq!(on7.lookup("retention.bytes"), Some(("10".into(), ConfigSource::DynamicTopic)));
        assert_eq!(on7.lookup("retention.ms"), Some(("180000".into(), ConfigSource::DynamicBroker)));
        assert_eq!(on8.lookup("retention.ms"), Some(("7200000".into(), ConfigSource::DynamicDefaultBroker)));
        assert_eq!(on8.num("segment.bytes"), Some(2_000_000));
        assert_eq!(on8.lookup("cleanup.policy"), None, "not set anywhere: the static default applies");
        // log.retention.ms wins over its synonyms at the same level.
        brokers.insert(None, map(&[("log.retention.hours", "2"), ("log.retention.ms", "5")]));
        assert_eq!(EffectiveConfigs::new(&topic, &brokers, 8).num("retention.ms"), Some(5));
    }

    #[test]
    fn operations_set_delete_append_and_subtract() {
        let r = ConfigResource::Topic("t".into());
        let cur = map(&[("retention.ms", "100"), ("cleanup.policy", "delete")]);
        let ops = [
            ConfigOp::Set("retention.bytes".into(), "5".into()),
            ConfigOp::Delete("retention.ms".into()),
            ConfigOp::Append("cleanup.policy".into(), "compact,delete".into()),
        ];
        let out = apply_ops(&cur, &ops, false, check_topic_config, is_topic_list, &r).unwrap();
        assert_eq!(out, map(&[("retention.bytes", "5"), ("cleanup.policy", "delete,compact")]));
        let out = apply_ops(&out, &[ConfigOp::Subtract("cleanup.policy".into(), "delete".into())], false, check_topic_config, is_topic_list, &r).unwrap();
        assert_eq!(out["cleanup.policy"], "compact");
        // AlterConfigs replaces the whole set.
        let out = apply_ops(&cur, &[ConfigOp::Set("segment.ms".into(), "1000".into())], true, check_topic_config, is_topic_list, &r).unwrap();
        assert_eq!(out, map(&[("segment.ms", "1000")]));
        // Refused: bad values, unknown keys, lists ops on scalars, duplicates.
        for ops in [
            vec![ConfigOp::Set("retention.ms".into(), "-7".into())],
            vec![ConfigOp::Set("no.such".into(), "1".into())],
            vec![ConfigOp::Delete("no.such".into())],
            vec![ConfigOp::Append("retention.ms".into(), "1".into())],
            vec![ConfigOp::Set("segment.ms".into(), "1".into()), ConfigOp::Delete("segment.ms".into())],
        ] {
            assert!(apply_ops(&cur, &ops, false, check_topic_config, is_topic_list, &r).is_err(), "{ops:?}");
        }
    }

    #[test]
    fn only_known_broker_configs_change_at_runtime_with_their_topic_rules() {
        check_broker_config("log.retention.hours", "48").unwrap();
        check_broker_config("log.retention.bytes", "-1").unwrap();
        check_broker_config("log.cleanup.policy", "compact").unwrap();
        assert!(check_broker_config("log.retention.hours", "x").is_err());
        assert!(check_broker_config("log.segment.bytes", "10").is_err(), "segment.bytes has a floor of 1 MiB");
        assert!(check_broker_config("broker.id", "3").is_err());
        check_broker_config("leader.replication.throttled.rate", "1000000").unwrap();
        assert!(check_broker_config("follower.replication.throttled.rate", "-2").is_err());
        assert_eq!(broker_config("log.retention.hours").unwrap().to_topic_value("-1"), "-1", "forever stays forever");
    }
}
