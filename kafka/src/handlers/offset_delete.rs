use chronik::PartitionStore;
use kafka_protocol::messages::offset_delete_response::{OffsetDeleteResponsePartition, OffsetDeleteResponseTopic};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};

use crate::server::{Caller, Context};
use chronik::security::acl::Operation;

/// DELETE on the group; topics the principal may not READ keep their
/// offsets and get TOPIC_AUTHORIZATION_FAILED.
pub async fn handle<S: PartitionStore>(ctx: &Context<S>, req: OffsetDeleteRequest, caller: &Caller) -> OffsetDeleteResponse {
    let mut resp = OffsetDeleteResponse::default();
    let authz = ctx.authz(caller);
    if !authz.group(Operation::Delete, &req.group_id.0) {
        resp.error_code = crate::errors::GROUP_AUTHORIZATION_FAILED;
        return resp;
    }
    let readable = |t: &str| authz.topic(Operation::Read, t);
    let partitions: Vec<(String, i32)> =
        req.topics.iter().filter(|t| readable(&t.name.0)).flat_map(|t| t.partitions.iter().map(|p| (t.name.0.to_string(), p.partition_index))).collect();
    let mut codes = match ctx.groups.delete_offsets(&req.group_id.0, &partitions).await {
        Ok(codes) => codes.into_iter(),
        Err(code) => {
            resp.error_code = code;
            return resp;
        }
    };
    resp.topics = req
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let code = if readable(&t.name.0) { codes.next().unwrap_or_default() } else { crate::errors::TOPIC_AUTHORIZATION_FAILED };
                    OffsetDeleteResponsePartition::default().with_partition_index(p.partition_index).with_error_code(code)
                })
                .collect();
            OffsetDeleteResponseTopic::default().with_name(t.name).with_partitions(partitions)
        })
        .collect();
    resp
}
