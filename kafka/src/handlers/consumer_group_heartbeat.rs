//! ConsumerGroupHeartbeat (KIP-848): join, stay, leave and learn one's
//! assignment, with topics named by id on the wire.

use std::collections::BTreeMap;

use chronik::PartitionStore;
use kafka_protocol::messages::consumer_group_heartbeat_response::{Assignment as WireAssignment, TopicPartitions};
use kafka_protocol::messages::{ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse};

use crate::coordinator::consumer::{Assignment, Beat};
use crate::server::{Caller, Context};
use chronik::security::acl::Operation;

/// READ on the group, DESCRIBE on each topic subscribed by name.
pub async fn handle<S: PartitionStore>(ctx: &Context<S>, req: ConsumerGroupHeartbeatRequest, caller: &Caller) -> ConsumerGroupHeartbeatResponse {
    let authz = ctx.authz(caller);
    let refused = if !authz.group(Operation::Read, &req.group_id.0) {
        Some((crate::errors::GROUP_AUTHORIZATION_FAILED, "Group authorization failed.".to_string()))
    } else {
        let names = req.subscribed_topic_names.iter().flatten();
        let denied: Vec<String> = names.filter(|t| !authz.topic(Operation::Describe, &t.0)).map(|t| t.0.to_string()).collect();
        (!denied.is_empty()).then(|| (crate::errors::TOPIC_AUTHORIZATION_FAILED, format!("Topic authorization failed for topics {denied:?}")))
    };
    drop(authz);
    if let Some((code, message)) = refused {
        return ConsumerGroupHeartbeatResponse::default().with_error_code(code).with_error_message(Some(super::str(message)));
    }
    // Owned partitions of topics no longer known are simply not owned.
    let owned = req.topic_partitions.map(|tps| {
        let mut a = Assignment::new();
        for tp in tps {
            if let Some(name) = ctx.store.topic_name(tp.topic_id.as_u128()) {
                a.entry(name).or_default().extend(tp.partitions);
            }
        }
        a
    });
    let beat = Beat {
        member_id: req.member_id.to_string(),
        epoch: req.member_epoch,
        instance_id: req.instance_id.map(|s| s.to_string()),
        rack: req.rack_id.map(|s| s.to_string()),
        rebalance_timeout_ms: req.rebalance_timeout_ms,
        topics: req.subscribed_topic_names.map(|ts| ts.into_iter().map(|t| t.0.to_string()).collect()),
        regex: req.subscribed_topic_regex.map(|s| s.to_string()),
        assignor: req.server_assignor.map(|s| s.to_string()),
        owned,
        client_id: caller.client_id.clone(),
        client_host: caller.host(),
    };
    let mut resp = ConsumerGroupHeartbeatResponse::default();
    match ctx.groups.consumer_heartbeat(&req.group_id.0, beat).await {
        Ok(reply) => {
            resp.member_id = Some(super::str(reply.member_id));
            resp.member_epoch = reply.epoch;
            resp.heartbeat_interval_ms = ctx.cfg.groups.consumer_heartbeat_interval.as_millis() as i32;
            if reply.epoch > 0 {
                resp.assignment = Some(WireAssignment::default().with_topic_partitions(wire_assignment(ctx, &reply.assignment)));
            }
        }
        Err((code, message)) => {
            resp.error_code = code;
            resp.error_message = Some(super::str(message));
        }
    }
    resp
}

/// An assignment with topics by id (a topic deleted meanwhile is left out).
pub(crate) fn wire_assignment<S: PartitionStore>(ctx: &Context<S>, a: &Assignment) -> Vec<TopicPartitions> {
    let by_id: BTreeMap<uuid::Uuid, Vec<i32>> = a
        .iter()
        .filter_map(|(t, ps)| Some((uuid::Uuid::from_u128(ctx.store.topic_id(t)?), ps.iter().copied().collect())))
        .collect();
    by_id.into_iter().map(|(id, partitions)| TopicPartitions::default().with_topic_id(id).with_partitions(partitions)).collect()
}
