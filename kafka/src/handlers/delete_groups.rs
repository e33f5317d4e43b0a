use chronik::PartitionStore;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};

use crate::server::{Caller, Context};
use chronik::security::acl::Operation;

pub async fn handle<S: PartitionStore>(ctx: &Context<S>, req: DeleteGroupsRequest, caller: &Caller) -> DeleteGroupsResponse {
    let mut resp = DeleteGroupsResponse::default();
    let authz = ctx.authz(caller);
    for group_id in req.groups_names {
        let code = match authz.group(Operation::Delete, &group_id.0) {
            true => ctx.groups.delete(&group_id.0).await,
            false => crate::errors::GROUP_AUTHORIZATION_FAILED,
        };
        resp.results.push(DeletableGroupResult::default().with_group_id(group_id).with_error_code(code));
    }
    resp
}
