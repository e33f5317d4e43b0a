//! ConsumerGroupDescribe (KIP-848): a consumer group's epochs, members,
//! their assignments and targets. A group that is not a consumer group with
//! members here is GROUP_ID_NOT_FOUND; Kafka's admin client then asks
//! DescribeGroups, as it does for classic groups.

use chronik::PartitionStore;
use kafka_protocol::messages::consumer_group_describe_response::{Assignment as WireAssignment, DescribedGroup, Member, TopicPartitions};
use kafka_protocol::messages::{ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, TopicName};

use crate::coordinator::consumer::{assignors, Assignment};
use crate::server::{Caller, Context};
use chronik::security::acl::Operation;

/// Kafka's member type of a consumer-protocol member (v1).
const MEMBER_TYPE_CONSUMER: i8 = 1;

fn assignment<S: PartitionStore>(ctx: &Context<S>, a: &Assignment) -> WireAssignment {
    let tps = a
        .iter()
        .map(|(t, ps)| {
            TopicPartitions::default()
                .with_topic_id(ctx.store.topic_id(t).map(uuid::Uuid::from_u128).unwrap_or_default())
                .with_topic_name(TopicName(super::str(t.clone())))
                .with_partitions(ps.iter().copied().collect())
        })
        .collect();
    WireAssignment::default().with_topic_partitions(tps)
}

pub async fn handle<S: PartitionStore>(ctx: &Context<S>, req: ConsumerGroupDescribeRequest, version: i16, caller: &Caller) -> ConsumerGroupDescribeResponse {
    let mut resp = ConsumerGroupDescribeResponse::default();
    let authz = ctx.authz(caller);
    for group_id in req.group_ids {
        let mut g = DescribedGroup::default().with_group_id(group_id.clone()).with_authorized_operations(i32::MIN);
        let described = match authz.group(Operation::Describe, &group_id.0) {
            true => ctx.groups.consumer_describe(&group_id.0).await,
            false => Err((crate::errors::GROUP_AUTHORIZATION_FAILED, "Group authorization failed.".to_string())),
        };
        if req.include_authorized_operations && described.is_ok() {
            g.authorized_operations = authz.operations(chronik::security::acl::ResourceType::Group, &group_id.0);
        }
        match described {
            Ok(cg) => {
                g.group_state = super::str(cg.state().name());
                g.group_epoch = cg.epoch;
                g.assignment_epoch = cg.assignment_epoch;
                g.assignor_name = super::str(if cg.assignor.is_empty() { assignors::UNIFORM } else { cg.assignor.as_str() });
                g.members = cg
                    .members
                    .values()
                    .map(|m| {
                        let mut out = Member::default()
                            .with_member_id(super::str(m.id.clone()))
                            .with_instance_id(m.instance_id.clone().map(super::str))
                            .with_rack_id(m.rack.clone().map(super::str))
                            .with_member_epoch(m.epoch)
                            .with_client_id(super::str(m.client_id.clone()))
                            .with_client_host(super::str(m.client_host.clone()))
                            .with_subscribed_topic_names(m.topics.iter().map(|t| TopicName(super::str(t.clone()))).collect())
                            .with_subscribed_topic_regex(m.regex.clone().map(super::str))
                            .with_assignment(assignment(ctx, &m.assigned))
                            .with_target_assignment(assignment(ctx, cg.targets.get(&m.id).unwrap_or(&Assignment::new())));
                        if version >= 1 {
                            out.member_type = MEMBER_TYPE_CONSUMER;
                        }
                        out
                    })
                    .collect();
            }
            Err((code, message)) => {
                g.error_code = code;
                g.error_message = Some(super::str(message));
            }
        }
        resp.groups.push(g);
    }
    resp
}
