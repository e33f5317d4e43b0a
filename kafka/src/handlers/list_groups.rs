use chronik::PartitionStore;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};

use crate::server::{Caller, Context};
use chronik::security::acl::Operation;

/// Kafka's group types (ListGroups v5, KIP-848).
pub(crate) const CLASSIC: &str = "classic";
const CONSUMER: &str = "consumer";

/// Every group with DESCRIBE on the cluster; else only the groups the
/// principal may DESCRIBE (as Kafka filters them).
pub async fn handle<S: PartitionStore>(ctx: &Context<S>, req: ListGroupsRequest, version: i16, caller: &Caller) -> ListGroupsResponse {
    let authz = ctx.authz(caller);
    let all = authz.cluster(Operation::Describe);
    let mut resp = ListGroupsResponse::default();
    let classic = match ctx.groups.list().await {
        Ok(groups) => groups,
        Err(code) => {
            resp.error_code = code;
            return resp;
        }
    };
    // A consumer-protocol group with members is listed as that, not as the
    // classic group its committed offsets also make.
    let consumer = ctx.groups.consumer_list().await;
    let listed = consumer
        .iter()
        .map(|(name, state)| (name.clone(), "consumer".to_string(), state.name(), CONSUMER))
        .chain(classic.into_iter().filter(|(n, _, _)| !consumer.iter().any(|(c, _)| c == n)).map(|(n, pt, s)| (n, pt, s.name(), CLASSIC)));
    for (name, protocol_type, state, group_type) in listed {
        if !all && !authz.group(Operation::Describe, &name) {
            continue;
        }
        if version >= 4 && !req.states_filter.is_empty() && !req.states_filter.iter().any(|s| s.eq_ignore_ascii_case(state)) {
            continue;
        }
        if version >= 5 && !req.types_filter.is_empty() && !req.types_filter.iter().any(|t| t.eq_ignore_ascii_case(group_type)) {
            continue;
        }
        let mut g = ListedGroup::default().with_group_id(GroupId(super::str(name))).with_protocol_type(super::str(protocol_type));
        if version >= 4 {
            g.group_state = super::str(state);
        }
        if version >= 5 {
            g.group_type = super::str(group_type);
        }
        resp.groups.push(g);
    }
    resp
}
