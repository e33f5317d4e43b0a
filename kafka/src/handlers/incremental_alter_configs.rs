//! IncrementalAlterConfigs (API 44): sets, deletes, appends to or subtracts
//! from a topic's configs or a broker's dynamic configs (the cluster-wide
//! defaults when the broker name is empty); `kafka-configs.sh --alter` sends
//! this. Replicated through the controller; applies without a restart.

use chronik::cluster::dynamic_config::ConfigOp;
use chronik::PartitionStore;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};

use crate::errors;
use crate::server::{Caller, Context};

const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;
const SUBTRACT: i8 = 3;

pub async fn handle<S: PartitionStore>(ctx: &Context<S>, req: IncrementalAlterConfigsRequest, caller: &Caller) -> IncrementalAlterConfigsResponse {
    let mut resp = IncrementalAlterConfigsResponse::default();
    for res in req.resources {
        let ops: Result<Vec<ConfigOp>, String> = res
            .configs
            .iter()
            .map(|c| {
                let (name, value) = (c.name.to_string(), c.value.as_ref().map(|v| v.to_string()));
                match (c.config_operation, value) {
                    (DELETE, _) => Ok(ConfigOp::Delete(name)),
                    (SET, Some(v)) => Ok(ConfigOp::Set(name, v)),
                    (APPEND, Some(v)) => Ok(ConfigOp::Append(name, v)),
                    (SUBTRACT, Some(v)) => Ok(ConfigOp::Subtract(name, v)),
                    (SET | APPEND | SUBTRACT, None) => Err(format!("config {name} has no value")),
                    (op, _) => Err(format!("config {name}: unknown operation {op}")),
                }
            })
            .collect();
        let (code, message) = match ops {
            Ok(ops) => super::alter_configs(ctx, caller, res.resource_type, &res.resource_name, ops, false, req.validate_only).await,
            Err(why) => (errors::INVALID_REQUEST, Some(why)),
        };
        let mut out = AlterConfigsResourceResponse::default();
        out.resource_type = res.resource_type;
        out.resource_name = res.resource_name;
        out.error_code = code;
        out.error_message = message.map(super::str);
        resp.responses.push(out);
    }
    resp
}
