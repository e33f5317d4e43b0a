use chronik::PartitionStore;
use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};

use crate::server::{Caller, Context};
use chronik::security::acl::Operation;

pub async fn handle<S: PartitionStore>(ctx: &Context<S>, req: SyncGroupRequest, version: i16, caller: &Caller) -> SyncGroupResponse {
    if !ctx.authz(caller).group(Operation::Read, &req.group_id.0) {
        return SyncGroupResponse::default().with_error_code(crate::errors::GROUP_AUTHORIZATION_FAILED);
    }
    let assignments = req.assignments.into_iter().map(|a| (a.member_id.to_string(), a.assignment)).collect();
    let out = ctx
        .groups
        .sync(
            &req.group_id.0,
            req.generation_id,
            &req.member_id,
            req.protocol_type.as_deref(),
            req.protocol_name.as_deref(),
            assignments
        )
        .await;
    let mut resp = SyncGroupResponse::default().with_error_code(out.error).with_assignment(out.assignment);
    if version >= 5 {
        resp.protocol_type = out.protocol_type.map(super::str);
        resp.protocol_name = out.protocol.map(super::str);
    }
    resp
}
