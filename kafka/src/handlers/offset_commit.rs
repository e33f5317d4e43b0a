use std::collections::HashMap;
use std::sync::Arc;

use futures::future::BoxFuture;

use chronik::offsets::{CommittedOffset, OFFSET_METADATA_MAX_BYTES};
use chronik::PartitionStore;
use kafka_protocol::messages::offset_commit_response::{OffsetCommitResponsePartition, OffsetCommitResponseTopic};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse, ResponseKind};

use crate::errors;
use crate::server::{Caller, Context};
use chronik::security::acl::Operation;

/// Stage one, run in request order (like Produce): checks and queues the
/// commit. Stage two, the returned future: waits for it to be replicated.
pub async fn submit<S: PartitionStore>(ctx: Arc<Context<S>>, req: OffsetCommitRequest, version: i16, caller: &Caller) -> BoxFuture<'static, ResponseKind> {
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
    // v10 names topics by id; an unknown id fails its partitions.
    // READ on the group, then on each topic (Kafka's checks).
    let authz = ctx.authz(caller);
    let group_ok = authz.group(Operation::Read, &req.group_id.0);
    let named: Vec<Result<String, i16>> = req.topics.iter().map(|t| super::topic_named(&ctx, &t.name, t.topic_id, version >= 10)).map(|n| match n {
            Ok(_) if !group_ok => Err(errors::GROUP_AUTHORIZATION_FAILED),
            Ok(name) if !authz.topic(Operation::Read, &name) => Err(errors::TOPIC_AUTHORIZATION_FAILED),
            other => other,
        })
        .collect();
    drop(authz);
    let names: Vec<String> = named.iter().filter_map(|n| n.clone().ok()).collect();
    let view = ctx.store.cluster_view(Some(&names));
    let partitions_of: HashMap<&str, usize> = view.topics.iter().map(|t| (t.name.as_str(), t.partitions.len())).collect();
    // Per partition: Some(code) when refused before the commit, None when it
    // is part of the commit (and gets the commit's result).
    let mut verdicts: Vec<(String, uuid::Uuid, Vec<(i32, Option<i16>)>)> = Vec::new();
    let mut offsets = Vec::new();
    for (t, named) in req.topics.iter().zip(named) {
        // A refused topic is still answered by its name.
        let name = named.clone().unwrap_or_else(|_| t.name.0.to_string());
        let mut parts = Vec::new();
        for p in &t.partitions {
            let metadata = p.committed_metadata.as_ref().map(|m| m.to_string()).unwrap_or_default();
            let known = partitions_of.get(name.as_str()).is_some_and(|n| p.partition_index >= 0 && (p.partition_index as usize) < *n);
            let verdict = if let Err(code) = named {
                Some(code)
            } else if !known {
                Some(errors::UNKNOWN_TOPIC_OR_PARTITION)
            } else if metadata.len() > OFFSET_METADATA_MAX_BYTES {
                Some(errors::OFFSET_METADATA_TOO_LARGE)
            } else {
                let leader_epoch = if version >= 6 { p.committed_leader_epoch } else { -1 };
                offsets.push((name.clone(), p.partition_index, CommittedOffset { offset: p.committed_offset, leader_epoch, metadata, commit_timestamp_ms: now_ms }));
                None
            };
            parts.push((p.partition_index, verdict));
        }
        verdicts.push((name, t.topic_id, parts));
    }
    let pending = if offsets.is_empty() {
        None
    } else {
        Some(ctx.groups.commit(&req.group_id.0, req.generation_id_or_member_epoch, &req.member_id, req.group_instance_id.as_deref(), offsets).await)
    };
    Box::pin(async move {
        let code = match pending {
            Some(p) => p.await,
            None => errors::NONE,
        };
        let mut resp = OffsetCommitResponse::default();
        for (name, topic_id, parts) in verdicts {
            let mut t = OffsetCommitResponseTopic::default().with_name(kafka_protocol::messages::TopicName(super::str(name))).with_topic_id(topic_id);
            for (index, verdict) in parts {
                t.partitions.push(OffsetCommitResponsePartition::default().with_partition_index(index).with_error_code(verdict.unwrap_or(code)));
            }
            resp.topics.push(t);
        }
        ResponseKind::OffsetCommit(resp)
    })
}
