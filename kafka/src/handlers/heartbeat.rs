use chronik::PartitionStore;
use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};

use crate::server::{Caller, Context};
use chronik::security::acl::Operation;

pub async fn handle<S: PartitionStore>(ctx: &Context<S>, req: HeartbeatRequest, caller: &Caller) -> HeartbeatResponse {
    if !ctx.authz(caller).group(Operation::Read, &req.group_id.0) {
        return HeartbeatResponse::default().with_error_code(crate::errors::GROUP_AUTHORIZATION_FAILED);
    }
    let code = ctx.groups.heartbeat(&req.group_id.0, req.generation_id, &req.member_id, req.group_instance_id.as_deref()).await;
    HeartbeatResponse::default().with_error_code(code)
}
