use chronik::PartitionStore;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};

use crate::coordinator::Join;
use crate::server::{Caller, Context};
use chronik::security::acl::Operation;

pub async fn handle<S: PartitionStore>(ctx: &Context<S>, req: JoinGroupRequest, version: i16, caller: &Caller) -> JoinGroupResponse {
    if !ctx.authz(caller).group(Operation::Read, &req.group_id.0) {
        return JoinGroupResponse::default().with_error_code(crate::errors::GROUP_AUTHORIZATION_FAILED).with_generation_id(-1);
    }
    let join = Join {
        group: req.group_id.0.to_string(),
        member_id: req.member_id.to_string(),
        instance_id: req.group_instance_id.map(|i| i.to_string()),
        client_id: caller.client_id.clone(),
        client_host: caller.host(),
        session_timeout_ms: req.session_timeout_ms,
        rebalance_timeout_ms: if version >= 1 { req.rebalance_timeout_ms } else { req.session_timeout_ms },
        protocol_type: req.protocol_type.to_string(),
        protocols: req.protocols.into_iter().map(|p| (p.name.to_string(), p.metadata)).collect(),
        api_version: version,
    };
    let out = ctx.groups.join(join).await;
    let mut resp = JoinGroupResponse::default()
        .with_error_code(out.error)
        .with_generation_id(out.generation)
        .with_leader(super::str(out.leader))
        .with_member_id(super::str(out.member_id));
    resp.protocol_name = match (version >= 7, out.protocol) {
        (true, p) => p.map(super::str),
        // Before v7 the name is not nullable.
        (false, p) => Some(super::str(p.unwrap_or_default())),
    };
    if version >= 7 {
        resp.protocol_type = out.protocol_type.map(super::str);
    }
    if version >= 9 {
        resp.skip_assignment = out.skip_assignment;
    }
    resp.members = out
        .members
        .into_iter()
        .map(|(id, instance, metadata)| {
            let mut m = JoinGroupResponseMember::default().with_member_id(super::str(id)).with_metadata(metadata);
            if version >= 5 {
                m.group_instance_id = instance.map(super::str);
            }
            m
        })
        .collect();
    resp
}
