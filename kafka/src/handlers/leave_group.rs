use chronik::PartitionStore;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};

use crate::server::{Caller, Context};
use chronik::security::acl::Operation;

pub async fn handle<S: PartitionStore>(ctx: &Context<S>, req: LeaveGroupRequest, version: i16, caller: &Caller) -> LeaveGroupResponse {
    if !ctx.authz(caller).group(Operation::Read, &req.group_id.0) {
        return LeaveGroupResponse::default().with_error_code(crate::errors::GROUP_AUTHORIZATION_FAILED);
    }
    // v0-2 name one member; v3+ a batch, by member or instance id.
    let members: Vec<(String, Option<String>)> = if version >= 3 {
        req.members.iter().map(|m| (m.member_id.to_string(), m.group_instance_id.as_ref().map(|i| i.to_string()))).collect()
    } else {
        vec![(req.member_id.to_string(), None)]
    };
    let (code, per_member) = ctx.groups.leave(&req.group_id.0, members.clone()).await;
    let mut resp = LeaveGroupResponse::default().with_error_code(code);
    if version >= 3 {
        resp.members = members
            .into_iter()
            .zip(per_member)
            .map(|((id, instance), err)| {
                MemberResponse::default().with_member_id(super::str(id)).with_group_instance_id(instance.map(super::str)).with_error_code(err)
            })
            .collect();
    } else if let Some(err) = per_member.first().filter(|_| code == crate::errors::NONE) {
        resp.error_code = *err;
    }
    resp
}
