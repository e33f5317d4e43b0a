//! DescribeConfigs (API 32): a topic's configs as they apply (its own over
//! the dynamic broker defaults over the node's flags over Kafka's defaults),
//! or a broker's, each with its source, type and (on request) synonyms and
//! a note of what Chronik does with it.

use chronik::cluster::dynamic_config::{self, ConfigResource, ConfigSource, EffectiveConfigs};
use chronik::cluster::topic_config::{self, Enforcement, TopicConfigDef, TOPIC_CONFIGS};
use chronik::config::ConfigType;
use chronik::store::ClusterView;
use chronik::PartitionStore;
use kafka_protocol::messages::describe_configs_response::{DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};

use crate::errors;
use crate::server::{Caller, Context};
use chronik::security::acl::Operation;

/// What one request asks for beyond names and values.
struct Wanted<'a> {
    version: i16,
    synonyms: bool,
    documentation: bool,
    keys: Option<&'a [kafka_protocol::protocol::StrBytes]>,
}

impl Wanted<'_> {
    fn key(&self, name: &str) -> bool {
        self.keys.is_none_or(|keys| keys.iter().any(|k| &**k == name))
    }

    fn entry(&self, name: &str, value: &str, source: ConfigSource, kind: ConfigType, read_only: bool) -> DescribeConfigsResourceResult {
        let mut c = DescribeConfigsResourceResult::default();
        c.name = super::str(name);
        c.value = Some(super::str(value));
        c.config_source = source as i8;
        c.read_only = read_only;
        if self.version >= 3 {
            c.config_type = kind as i8;
        }
        c
    }

    fn synonym(&self, c: &mut DescribeConfigsResourceResult, name: &str, value: &str, source: ConfigSource) {
        if self.synonyms {
            let mut s = DescribeConfigsSynonym::default();
            s.name = super::str(name);
            s.value = Some(super::str(value));
            s.source = source as i8;
            c.synonyms.push(s);
        }
    }
}

pub fn handle<S: PartitionStore>(ctx: &Context<S>, req: DescribeConfigsRequest, version: i16, caller: &Caller) -> DescribeConfigsResponse {
    let mut resp = DescribeConfigsResponse::default();
    let view = ctx.store.cluster_view(None);
    for res in &req.resources {
        let wanted = Wanted {
            version,
            synonyms: req.include_synonyms,
            documentation: req.include_documentation && version >= 3,
            keys: res.configuration_keys.as_deref(),
        };
        let mut out = DescribeConfigsResult::default();
        out.resource_type = res.resource_type;
        out.resource_name = res.resource_name.clone();
        let described = match super::config_resource(res.resource_type, &res.resource_name)
            .and_then(|r| super::config_authorized(ctx, caller, r, Operation::DescribeConfigs)) {
            Ok(ConfigResource::Topic(name)) => topic(ctx, &view, &name, &wanted),
            Ok(ConfigResource::Broker(node)) => broker(ctx, &view, node, &wanted),
            Err(e) => Err(e),
        };
        match described {
            Ok(configs) => out.configs = configs,
            Err((code, message)) => {
                out.error_code = code;
                out.error_message = Some(super::str(message));
            }
        }
        resp.results.push(out);
    }
    resp
}

fn topic<S: PartitionStore>(ctx: &Context<S>, view: &ClusterView, name: &str, wanted: &Wanted) -> Result<Vec<DescribeConfigsResourceResult>, (i16, String)> {
    let t = view.topics.iter().find(|t| t.name == name).ok_or_else(|| (errors::UNKNOWN_TOPIC_OR_PARTITION, format!("topic {name} does not exist")))?;
    let me = ctx.store.node_id();
    let effective = EffectiveConfigs::new(&t.configs, &view.broker_configs, me);
    let mut out = Vec::new();
    for def in TOPIC_CONFIGS.iter().filter(|d| wanted.key(d.name)) {
        let node_default = topic_config::default_value(def, &ctx.cfg.limits, &ctx.cfg.retention);
        let (value, source) = match effective.lookup(def.name) {
            Some((v, source)) => (v.into_owned(), source),
            None if node_default != def.default => (node_default, ConfigSource::StaticBroker),
            None => (node_default, ConfigSource::Default),
        };
        let mut c = wanted.entry(def.name, &value, source, def.kind, false);
        // Synonyms, in order of precedence, as Kafka lists them.
        if let Some(v) = t.configs.get(def.name) {
            wanted.synonym(&mut c, def.name, v, ConfigSource::DynamicTopic);
        }
        for (level, source) in [(view.broker_configs.get(&Some(me)), ConfigSource::DynamicBroker), (view.broker_configs.get(&None), ConfigSource::DynamicDefaultBroker)] {
            for syn in dynamic_config::synonyms(def.name) {
                if let Some(v) = level.and_then(|l| l.get(syn.name)) {
                    wanted.synonym(&mut c, syn.name, v, source);
                }
            }
        }
        for syn in dynamic_config::synonyms(def.name) {
            if let Some(s) = ctx.cfg.broker_configs.iter().find(|s| s.name == syn.name) {
                let source = if s.value == s.kafka_default { ConfigSource::Default } else { ConfigSource::StaticBroker };
                wanted.synonym(&mut c, s.name, &s.value, source);
            }
        }
        if wanted.documentation {
            c.documentation = Some(super::str(documentation(def)));
        }
        out.push(c);
    }
    Ok(out)
}

/// What Chronik does with a topic config (DescribeConfigs' documentation).
fn documentation(def: &TopicConfigDef) -> String {
    match def.enforcement {
        Enforcement::Enforced => format!("Kafka's {}: enforced by Chronik.", def.name),
        Enforcement::NotYet(why) => format!("Kafka's {}: accepted, not enforced by Chronik yet ({why}).", def.name),
        Enforcement::NotApplicable(why) => {
            format!("Kafka's {}: without meaning in Chronik ({why}).", def.name)
        }
    }
}

/// A broker's configs: this node's, under Kafka's names, with the dynamic
/// ones over them; for another node or the cluster-wide defaults (an empty
/// name), the dynamic ones only, as Kafka answers for the defaults.
fn broker<S: PartitionStore>(
    ctx: &Context<S>,
    view: &ClusterView,
    node: Option<u64>,
    wanted: &Wanted,
) -> Result<Vec<DescribeConfigsResourceResult>, (i16, String)> {
    let me = ctx.store.node_id();
    if let Some(n) = node.filter(|n| !view.nodes.iter().any(|v| v.id == *n)) {
        return Err((errors::INVALID_REQUEST, format!("broker {n} is not a node of this cluster")));
    }
    let dynamic_levels: Vec<(&std::collections::BTreeMap<String, String>, ConfigSource)> = match node {
        Some(n) => [(view.broker_configs.get(&Some(n)), ConfigSource::DynamicBroker), (view.broker_configs.get(&None), ConfigSource::DynamicDefaultBroker)]
            .into_iter()
            .filter_map(|(l, s)| l.map(|l| (l, s)))
            .collect(),
        None => view.broker_configs.get(&None).map(|l| (l, ConfigSource::DynamicDefaultBroker)).into_iter().collect(),
    };
    let dynamic = |name: &str| dynamic_levels.iter().find_map(|(l, s)| l.get(name).map(|v| (v.clone(), *s)));
    let mut out = Vec::new();
    if node == Some(me) {
        for s in ctx.cfg.broker_configs.iter().filter(|s| wanted.key(s.name)) {
            let is_dynamic = dynamic_config::broker_config(s.name).is_some();
            let (value, source) = match dynamic(s.name) {
                Some(d) => d,
                None if s.value == s.kafka_default => (s.value.clone(), ConfigSource::Default),
                None => (s.value.clone(), ConfigSource::StaticBroker),
            };
            let mut c = wanted.entry(s.name, &value, source, s.kind, !is_dynamic);
            if let Some((v, source)) = dynamic(s.name) {
                wanted.synonym(&mut c, s.name, &v, source);
            }
            wanted.synonym(&mut c, s.name, &s.value, if s.value == s.kafka_default { ConfigSource::Default } else { ConfigSource::StaticBroker });
            out.push(c);
        }
    }
    // Dynamic configs not listed above.
    for def in dynamic_config::BROKER_CONFIGS.iter().filter(|d| wanted.key(d.name)) {
        if out.iter().any(|c| &*c.name == def.name) {
            continue;
        }
        if let Some((v, source)) = dynamic(def.name) {
            let mut c = wanted.entry(def.name, &v, source, def.kind, false);
            wanted.synonym(&mut c, def.name, &v, source);
            out.push(c);
        }
    }
    Ok(out)
}
