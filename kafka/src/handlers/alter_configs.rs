//! AlterConfigs (API 33): replaces the whole set of a topic's configs, or of
//! a broker's dynamic configs (the cluster-wide defaults when the broker name
//! is empty): whatever the request does not name goes back to its default,
//! as in Kafka. Replicated through the controller; applies without a restart.

use chronik::cluster::dynamic_config::ConfigOp;
use chronik::PartitionStore;
use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};

use crate::server::{Caller, Context};

pub async fn handle<S: PartitionStore>(ctx: &Context<S>, req: AlterConfigsRequest, caller: &Caller) -> AlterConfigsResponse {
    let mut resp = AlterConfigsResponse::default();
    for res in req.resources {
        let ops: Vec<ConfigOp> = res
            .configs
            .iter()
            .map(|c| match &c.value {
                Some(v) => ConfigOp::Set(c.name.to_string(), v.to_string()),
                None => ConfigOp::Delete(c.name.to_string()),
            })
            .collect();
        let (code, message) = super::alter_configs(ctx, caller, res.resource_type, &res.resource_name, ops, true, req.validate_only).await;
        let mut out = AlterConfigsResourceResponse::default();
        out.resource_type = res.resource_type;
        out.resource_name = res.resource_name;
        out.error_code = code;
        out.error_message = message.map(super::str);
        resp.responses.push(out);
    }
    resp
}
