use chronik::PartitionStore;
use kafka_protocol::messages::offset_delete_response::{OffsetDeleteResponsePartition, OffsetDeleteResponseTopic};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};

use crate::server::Context;

pub async fn handle<S: PartitionStore>(ctx: &Context<S>, req: OffsetDeleteRequest) -> OffsetDeleteResponse {
    let partitions: Vec<(String, i32)> =
        req.topics.iter().flat_map(|t| t.partitions.iter().map(|p| (t.name.0.to_string(), p.partition_index))).collect();
    let mut resp = OffsetDeleteResponse::default();
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
                .map(|p| OffsetDeleteResponsePartition::default().with_partition_index(p.partition_index).with_error_code(codes.next().unwrap_or_default()))
                .collect();
            OffsetDeleteResponseTopic::default().with_name(t.name).with_partitions(partitions)
        })
        .collect();
    resp
}
