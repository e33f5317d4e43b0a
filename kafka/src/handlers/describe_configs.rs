use chronik::topic_config::{self, ConfigType, TOPIC_CONFIGS};
use chronik::PartitionStore;
use kafka_protocol::messages::describe_configs_response::{DescribeConfigsResourceResult, DescribeConfigsResult};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};

use crate::errors;
use crate::server::Context;

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
const SOURCE_DYNAMIC_TOPIC: i8 = 1;
const SOURCE_DEFAULT: i8 = 5;

fn entry(version: i16, name: &str, value: &str, source: i8, kind: ConfigType) -> DescribeConfigsResourceResult {
    let mut c = DescribeConfigsResourceResult::default();
    c.name = super::str(name);
    c.value = Some(super::str(value));
    c.config_source = source;
    if version >= 3 {
        c.config_type = kind as i8;
    }
    c
}

pub fn handle<S: PartitionStore>(ctx: &Context<S>, req: DescribeConfigsRequest, version: i16) -> DescribeConfigsResponse {
    let mut resp = DescribeConfigsResponse::default();
    for res in req.resources {
        let mut out = DescribeConfigsResult::default();
        out.resource_type = res.resource_type;
        out.resource_name = res.resource_name.clone();
        let wanted = |name: &str| res.configuration_keys.as_ref().is_none_or(|keys| keys.iter().any(|k| &**k == name));
        match res.resource_type {
            RESOURCE_TOPIC => {
                let name = res.resource_name.to_string();
                match ctx.store.cluster_view(Some(&[name.clone()])).topics.first() {
                    Some(t) => {
                        for def in TOPIC_CONFIGS.iter().filter(|d| wanted(d.name)) {
                            let c = match t.configs.get(def.name) {
                                Some(v) => entry(version, def.name, v, SOURCE_DYNAMIC_TOPIC, def.kind),
                                None => entry(version, def.name, &topic_config::default_value(def, &ctx.cfg.limits, &ctx.cfg.retention), SOURCE_DEFAULT, def.kind),
                            };
                            out.configs.push(c);
                        }
                    }
                    None => {
                        out.error_code = errors::UNKNOWN_TOPIC_OR_PARTITION;
                        out.error_message = Some(super::str(format!("topic {name} does not exist")));
                    }
                }
            }
            RESOURCE_BROKER => {
                let id = ctx.store.node_id().to_string();
                let max_message = ctx.cfg.limits.message_max_bytes.to_string();
                let auto_create = if ctx.store.auto_create_topics() { "true" } else { "false" };
                for (k, v, kind) in [
                    ("broker.id", id.as_str(), ConfigType::Int),
                    ("auto.create.topics.enable", auto_create, ConfigType::Boolean),
                    ("message.max.bytes", max_message.as_str(), ConfigType::Int),
                ] {
                    if wanted(k) {
                        out.configs.push(entry(version, k, v, SOURCE_DEFAULT, kind));
                    }
                }
            }
            other => {
                out.error_code = errors::INVALID_REQUEST;
                out.error_message = Some(super::str(format!("resource type {other} is not supported")));
            }
        }
        resp.results.push(out);
    }
    resp
}
