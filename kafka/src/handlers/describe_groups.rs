use chronik::PartitionStore;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse};

use crate::server::{Caller, Context};
use chronik::security::acl::Operation;

pub async fn handle<S: PartitionStore>(ctx: &Context<S>, req: DescribeGroupsRequest, version: i16, caller: &Caller) -> DescribeGroupsResponse {
    let mut resp = DescribeGroupsResponse::default();
    let authz = ctx.authz(caller);
    for group_id in req.groups {
        let mut g = DescribedGroup::default().with_group_id(group_id.clone());
        let described = match authz.group(Operation::Describe, &group_id.0) {
            true => ctx.groups.describe(&group_id.0).await,
            false => Err(crate::errors::GROUP_AUTHORIZATION_FAILED),
        };
        if req.include_authorized_operations && described.is_ok() {
            g.authorized_operations = authz.operations(chronik::security::acl::ResourceType::Group, &group_id.0);
        }
        match described {
            // v6 (KIP-1043): a group that does not exist is an error.
            Ok(d) if version >= 6 && d.state == crate::coordinator::State::Dead => {
                g.error_code = crate::errors::GROUP_ID_NOT_FOUND;
                g.error_message = Some(super::str(format!("group {} not found", group_id.0)));
                g.group_state = super::str("Dead");
            }
            Ok(d) => {
                g.group_state = super::str(d.state.name());
                g.protocol_type = super::str(d.protocol_type);
                g.protocol_data = super::str(d.protocol);
                g.members = d
                    .members
                    .into_iter()
                    .map(|m| {
                        let mut dm = DescribedGroupMember::default()
                            .with_member_id(super::str(m.member_id))
                            .with_client_id(super::str(m.client_id))
                            .with_client_host(super::str(m.client_host))
                            .with_member_metadata(m.metadata)
                            .with_member_assignment(m.assignment);
                        if version >= 4 {
                            dm.group_instance_id = m.instance_id.map(super::str);
                        }
                        dm
                    })
                    .collect();
            }
            Err(code) => {
                g.error_code = code;
                if version >= 6 {
                    g.error_message = Some(super::str(format!("group {} could not be described here", group_id.0)));
                }
                g.group_state = super::str("Dead");
            }
        }
        resp.groups.push(g);
    }
    resp
}
