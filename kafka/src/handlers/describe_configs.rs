use chronik::metadata::TOPIC_CONFIG_DEFAULTS;
use chronik::PartitionStore;
use kafka_protocol::messages::describe_configs_response::{DescribeConfigsResourceResult, DescribeConfigsResult};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};

use crate::errors;
use crate::server::Context;

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
const SOURCE_DYNAMIC_TOPIC: i8 = 1;
const SOURCE_DEFAULT: i8 = 5;
/// DescribeConfigs v3+ config types.
const TYPE_STRING: i8 = 2;

fn entry(version: i16, name: &str, value: &str, source: i8) -> DescribeConfigsResourceResult {
    let mut c = DescribeConfigsResourceResult::default();
    c.name = super::str(name);
    c.value = Some(super::str(value));
    c.config_source = source;
    if version >= 3 {
        c.config_type = TYPE_STRING;
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
                        for (k, default) in TOPIC_CONFIG_DEFAULTS {
                            if !wanted(k) {
                                continue;
                            }
                            let c = match t.configs.get(*k) {
                                Some(v) => entry(version, k, v, SOURCE_DYNAMIC_TOPIC),
                                None => entry(version, k, default, SOURCE_DEFAULT),
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
                for (k, v) in [("broker.id", id.as_str()), ("auto.create.topics.enable", if ctx.store.auto_create_topics() { "true" } else { "false" })] {
                    if wanted(k) {
                        out.configs.push(entry(version, k, v, SOURCE_DEFAULT));
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
