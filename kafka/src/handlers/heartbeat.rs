use chronik::PartitionStore;
use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};

use crate::server::Context;

pub async fn handle<S: PartitionStore>(ctx: &Context<S>, req: HeartbeatRequest) -> HeartbeatResponse {
    let code = ctx.groups.heartbeat(&req.group_id.0, req.generation_id, &req.member_id, req.group_instance_id.as_deref()).await;
    HeartbeatResponse::default().with_error_code(code)
}
