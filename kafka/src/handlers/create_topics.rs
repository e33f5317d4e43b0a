use std::collections::{BTreeMap, HashSet};

use chronik::store::TopicSpec;
use chronik::PartitionStore;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use tracing::info;

use crate::errors;
use crate::server::{Caller, Context};
use chronik::security::acl::Operation;

/// CREATE on the cluster, or on each topic (Kafka's check).
pub async fn handle<S: PartitionStore>(ctx: &Context<S>, req: CreateTopicsRequest, version: i16, caller: &Caller) -> CreateTopicsResponse {
    let authz = ctx.authz(caller);
    let on_cluster = authz.cluster(Operation::Create);
    let mut resp = CreateTopicsResponse::default();
    let mut seen = HashSet::new();
    let duplicates: HashSet<String> =
        req.topics.iter().map(|t| t.name.0.to_string()).filter(|n| !seen.insert(n.clone())).collect();
    for topic in req.topics {
        let name = topic.name.0.to_string();
        let mut r = CreatableTopicResult::default();
        r.name = topic.name.clone();
        r.num_partitions = -1;
        r.replication_factor = -1;
        let fail = |r: &mut CreatableTopicResult, code: i16, msg: String| {
            r.error_code = code;
            r.error_message = Some(super::str(msg));
        };
        if !on_cluster && !authz.topic(Operation::Create, &name) {
            fail(&mut r, errors::TOPIC_AUTHORIZATION_FAILED, "Authorization failed.".into());
        } else if duplicates.contains(&name) {
            fail(&mut r, errors::INVALID_REQUEST, format!("topic {name} appears more than once in the request"));
        } else if !topic.assignments.is_empty() && (topic.num_partitions != -1 || topic.replication_factor != -1) {
            fail(&mut r, errors::INVALID_REQUEST, format!("topic {name}: a replica assignment and a partition count or replication factor cannot both be given"));
        } else {
            let mut configs = BTreeMap::new();
            for c in &topic.configs {
                if let Some(v) = &c.value {
                    configs.insert(c.name.to_string(), v.to_string());
                }
            }
            // Manual assignment: partition i's replicas, the first preferred.
            let mut assignments: Vec<(i32, Vec<u64>)> = topic
                .assignments
                .iter()
                .map(|a| (a.partition_index, a.broker_ids.iter().map(|b| b.0 as u64).collect()))
                .collect();
            assignments.sort_by_key(|(p, _)| *p);
            let assignment = (!assignments.is_empty()).then(|| assignments.iter().map(|(_, r)| r.clone()).collect::<Vec<_>>());
            let spec = TopicSpec {
                name: name.clone(),
                partitions: (topic.num_partitions != -1).then_some(topic.num_partitions),
                replication_factor: (topic.replication_factor != -1).then_some(topic.replication_factor),
                configs,
                assignment,
            };
            if assignments.iter().enumerate().any(|(i, (p, _))| *p != i as i32) {
                fail(&mut r, errors::INVALID_REPLICA_ASSIGNMENT, format!("topic {name}: the assignment's partitions must be 0, 1, 2, ... once each"));
                resp.topics.push(r);
                continue;
            }
            match ctx.store.create_topic(spec, req.validate_only).await {
                Ok(()) => {
                    info!(topic = %name, validate_only = req.validate_only, "CreateTopics succeeded");
                    if version < 5 {
                    } else if let Some(t) = ctx.store.cluster_view(Some(&[name.clone()])).topics.first() {
                        r.num_partitions = t.partitions.len() as i32;
                        r.replication_factor = t.partitions.first().map(|p| p.replicas.len() as i16).unwrap_or(-1);
                        if version >= 7 {
                            r.topic_id = uuid::Uuid::from_u128(t.id);
                        }
                    } else if req.validate_only {
                        r.num_partitions = topic.num_partitions;
                        r.replication_factor = topic.replication_factor;
                    }
                }
                Err(e) => fail(&mut r, errors::code(&e), e.to_string()),
            }
        }
        resp.topics.push(r);
    }
    resp
}
