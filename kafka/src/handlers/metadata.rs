use std::time::Duration;

use chronik::store::TopicSpec;
use chronik::{PartitionStore, StoreError};
use kafka_protocol::messages::metadata_response::{MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use tracing::info;

use crate::errors;
use crate::server::{Caller, Context};
use chronik::security::acl::{Operation, ResourceType, CLUSTER_NAME};

/// Longest a Metadata answer waits for partitions in an election.
pub const ELECTION_WAIT_MAX: Duration = Duration::from_millis(1500);
const ELECTION_POLL: Duration = Duration::from_millis(20);

pub async fn handle<S: PartitionStore>(ctx: &Context<S>, req: MetadataRequest, version: i16, caller: &Caller) -> MetadataResponse {
    // v0: an empty list means all topics; v1+: null means all topics.
    // v10+ may name a topic by id instead; an unknown id is UNKNOWN_TOPIC_ID.
    let mut unknown_ids = Vec::new();
    let requested: Option<Vec<String>> = match &req.topics {
        None => None,
        Some(t) if t.is_empty() && version == 0 => None,
        Some(t) => Some(
            t.iter()
                .filter_map(|t| match &t.name {
                    Some(n) => Some(n.0.to_string()),
                    None => super::topic_named(ctx, &TopicName::default(), t.topic_id, true).map_err(|_| unknown_ids.push(t.topic_id)).ok(),
                })
                .collect(),
        ),
    };
    let auto_create = ctx.store.auto_create_topics() && (version < 4 || req.allow_auto_topic_creation);
    let mut failed: Vec<(String, i16)> = Vec::new();
    // Topics the principal may not DESCRIBE: TOPIC_AUTHORIZATION_FAILED when
    // named (existing or not), left out of a listing of all.
    let authz = ctx.authz(caller);
    let requested = requested.map(|names| {
        let (ok, denied): (Vec<String>, Vec<String>) = names.into_iter().partition(|n| authz.topic(Operation::Describe, n));
        failed.extend(denied.into_iter().map(|n| (n, errors::TOPIC_AUTHORIZATION_FAILED)));
        ok
    });
    let may_create = |name: &str| authz.cluster(Operation::Create) || authz.topic(Operation::Create, name);
    if let Some(names) = &requested {
        let view = ctx.store.cluster_view(Some(names));
        for name in names.iter().filter(|n| !view.topics.iter().any(|t| &t.name == *n)) {
            if !auto_create || !may_create(name) {
                failed.push((name.clone(), errors::UNKNOWN_TOPIC_OR_PARTITION));
                continue;
            }
            let spec = TopicSpec { name: name.clone(), partitions: None, replication_factor: None, configs: Default::default(), assignment: None };
            match ctx.store.create_topic(spec, false).await {
                Ok(()) => info!(topic = %name, "auto-created topic"),
                Err(StoreError::Controller(chronik::cluster::metadata::ControllerError::TopicExists(_))) => {}
                Err(e) => failed.push((name.clone(), errors::code(&e))),
            }
        }
    }
    // During an election, wait for it (bounded) rather than answer "no
    // leader": clients re-ask for a leaderless partition only after a backoff
    // (librdkafka: 1 s), which would double what a failover costs them.
    let deadline = tokio::time::Instant::now() + ELECTION_WAIT_MAX;
    let mut view = ctx.store.cluster_view(requested.as_deref());
    while view.topics.iter().any(|t| t.partitions.iter().any(|p| p.electing)) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(ELECTION_POLL).await;
        view = ctx.store.cluster_view(requested.as_deref());
    }
    let mut resp = MetadataResponse::default();
    if version >= 2 {
        resp.cluster_id = Some(view.cluster_id.clone()).filter(|c| !c.is_empty()).map(super::str);
    }
    if version >= 1 {
        // Never -1 nor a dead node: librdkafka's admin client waits for the
        // named controller without asking again.
        resp.controller_id = BrokerId(view.controller_for_clients(ctx.store.node_id()) as i32);
    }
    resp.brokers = view
        .nodes
        .iter()
        .filter_map(|n| {
            // Each node's address on the client's listener; a node without
            // that listener is left out, as Kafka does.
            let (host, port) = n.endpoint(&caller.listener)?;
            let mut b = MetadataResponseBroker::default();
            b.node_id = BrokerId(n.id as i32);
            b.host = super::str(host);
            b.port = port;
            if version >= 1 {
                b.rack = n.rack.clone().map(super::str);
            }
            Some(b)
        })
        .collect();
    if version >= 8 && version <= 10 && req.include_cluster_authorized_operations {
        resp.cluster_authorized_operations = authz.operations(ResourceType::Cluster, CLUSTER_NAME);
    }
    for t in view.topics.iter().filter(|t| requested.is_some() || authz.topic(Operation::Describe, &t.name)) {
        let mut mt = MetadataResponseTopic::default();
        if version >= 8 && req.include_topic_authorized_operations {
            mt.topic_authorized_operations = authz.operations(ResourceType::Topic, &t.name);
        }
        mt.name = Some(TopicName(super::str(t.name.clone())));
        if version >= 1 {
            mt.is_internal = t.internal;
        }
        if version >= 10 {
            mt.topic_id = uuid::Uuid::from_u128(t.id);
        }
        mt.partitions = t
            .partitions
            .iter()
            .map(|p| {
                let mut mp = MetadataResponsePartition::default();
                mp.partition_index = p.partition;
                mp.leader_id = BrokerId(p.leader.map(|l| l as i32).unwrap_or(-1));
                if version >= 7 {
                    mp.leader_epoch = p.leader_epoch;
                }
                mp.error_code = if p.leader.is_some() { errors::NONE } else { errors::LEADER_NOT_AVAILABLE };
                mp.replica_nodes = p.replicas.iter().map(|r| BrokerId(*r as i32)).collect();
                mp.isr_nodes = p.isr.iter().map(|r| BrokerId(*r as i32)).collect();
                mp
            })
            .collect();
        resp.topics.push(mt);
    }
    for (name, code) in failed {
        let mut mt = MetadataResponseTopic::default();
        mt.name = Some(TopicName(super::str(name)));
        mt.error_code = code;
        resp.topics.push(mt);
    }
    for id in unknown_ids {
        let mut mt = MetadataResponseTopic::default();
        mt.topic_id = id;
        mt.error_code = errors::UNKNOWN_TOPIC_ID;
        resp.topics.push(mt);
    }
    resp
}
