use chronik::PartitionStore;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};

use crate::server::Context;

pub async fn handle<S: PartitionStore>(ctx: &Context<S>, req: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let mut resp = DeleteGroupsResponse::default();
    for group_id in req.groups_names {
        let code = ctx.groups.delete(&group_id.0).await;
        resp.results.push(DeletableGroupResult::default().with_group_id(group_id).with_error_code(code));
    }
    resp
}
