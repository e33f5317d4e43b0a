use chronik::PartitionStore;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};

use crate::server::Context;

/// Kafka's name for the group type of JoinGroup/SyncGroup groups.
pub(crate) const CLASSIC: &str = "classic";

pub async fn handle<S: PartitionStore>(ctx: &Context<S>, req: ListGroupsRequest, version: i16) -> ListGroupsResponse {
    let mut resp = ListGroupsResponse::default();
    match ctx.groups.list().await {
        Ok(groups) => {
            for (name, protocol_type, state) in groups {
                if version >= 4 && !req.states_filter.is_empty() && !req.states_filter.iter().any(|s| s.eq_ignore_ascii_case(state.name())) {
                    continue;
                }
                // v5 (KIP-848): every group here speaks the classic protocol.
                if version >= 5 && !req.types_filter.is_empty() && !req.types_filter.iter().any(|t| t.eq_ignore_ascii_case(CLASSIC)) {
                    continue;
                }
                let mut g = ListedGroup::default().with_group_id(GroupId(super::str(name))).with_protocol_type(super::str(protocol_type));
                if version >= 4 {
                    g.group_state = super::str(state.name());
                }
                if version >= 5 {
                    g.group_type = super::str(CLASSIC);
                }
                resp.groups.push(g);
            }
        }
        Err(code) => resp.error_code = code,
    }
    resp
}
