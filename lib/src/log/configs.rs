//! What the log's rules read of a topic's configs: a lookup over its own
//! configs or its effective ones (`crate::cluster::dynamic_config`), and the
//! policies derived from them.

use std::borrow::Cow;
use std::collections::BTreeMap;

/// Read access to a topic's configs: its own (a map), or as they apply on
/// a node (`crate::cluster::dynamic_config::EffectiveConfigs`, with the broker defaults).
pub trait ConfigLookup {
    fn value(&self, key: &str) -> Option<Cow<'_, str>>;

    /// A numeric config, if set and parsable.
    fn num(&self, key: &str) -> Option<i64> {
        self.value(key).and_then(|v| v.trim().parse::<i64>().ok())
    }
}

impl ConfigLookup for BTreeMap<String, String> {
    fn value(&self, key: &str) -> Option<Cow<'_, str>> {
        self.get(key).map(|v| Cow::Borrowed(v.as_str()))
    }
}

/// Whether the topic's cleanup.policy includes `compact`.
pub fn compacted(configs: &impl ConfigLookup) -> bool {
    configs.value("cleanup.policy").is_some_and(|p| p.split(',').any(|x| x.trim().eq_ignore_ascii_case("compact")))
}

/// Whether the broker stamps the topic's batches (message.timestamp.type).
pub fn log_append_time(configs: &impl ConfigLookup) -> bool {
    configs.value("message.timestamp.type").is_some_and(|t| t.trim().eq_ignore_ascii_case("LogAppendTime"))
}
