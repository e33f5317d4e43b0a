//! One file per Kafka API; each turns a request into calls on the partition
//! store and its results into a response.

pub mod alter_configs;
pub mod alter_partition_reassignments;
pub mod alter_user_scram_credentials;
pub mod api_versions;
pub mod consumer_group_describe;
pub mod consumer_group_heartbeat;
pub mod create_acls;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_acls;
pub mod delete_groups;
pub mod delete_records;
pub mod delete_topics;
pub mod describe_acls;
pub mod describe_client_quotas;
pub mod describe_cluster;
pub mod describe_configs;
pub mod describe_groups;
pub mod describe_log_dirs;
pub mod describe_producers;
pub mod describe_quorum;
pub mod describe_topic_partitions;
pub mod describe_user_scram_credentials;
pub mod elect_leaders;
pub mod fetch;
pub mod find_coordinator;
pub mod heartbeat;
pub mod incremental_alter_configs;
pub mod init_producer_id;
pub mod join_group;
pub mod leave_group;
pub mod list_config_resources;
pub mod list_groups;
pub mod list_offsets;
pub mod list_partition_reassignments;
pub mod metadata;
pub mod offset_commit;
pub mod offset_delete;
pub mod offset_fetch;
pub mod offset_for_leader_epoch;
pub mod produce;
pub mod sync_group;

use std::sync::Arc;

use chronik::cluster::dynamic_config::{ConfigOp, ConfigResource};
use chronik::security::acl::Operation;
use chronik::PartitionStore;
use kafka_protocol::messages::{RequestKind, ResponseKind, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::server::{Caller, Context};

/// The least a read waits for its partitions' leaders to be ready (an
/// election ending here, an idle leader renewing its lease), even when the
/// client asks for no wait at all.
const READ_READY_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

/// Waits, all partitions at once, until each one's leader here is ready
/// to serve or cannot be (see `PartitionStore::leader_ready`).
pub(crate) async fn leaders_ready<'a, S: PartitionStore>(
    ctx: &Context<S>,
    tps: impl Iterator<Item = &'a chronik::TopicPartition>,
    deadline: tokio::time::Instant,
) {
    let deadline = deadline.max(tokio::time::Instant::now() + READ_READY_WAIT);
    futures::future::join_all(tps.map(|tp| ctx.store.leader_ready(tp, deadline))).await;
}

pub async fn dispatch<S: PartitionStore>(ctx: Arc<Context<S>>, req: RequestKind, version: i16, caller: Caller) -> ResponseKind {
    match req {
        RequestKind::ApiVersions(r) => ResponseKind::ApiVersions(api_versions::answer(&ctx, &r)),
        RequestKind::Metadata(r) => ResponseKind::Metadata(metadata::handle(&ctx, r, version, &caller).await),
        RequestKind::Fetch(r) => ResponseKind::Fetch(fetch::handle(&ctx, r, version, &caller).await),
        RequestKind::ListOffsets(r) => ResponseKind::ListOffsets(list_offsets::handle(&ctx, r, version, &caller).await),
        RequestKind::CreateTopics(r) => ResponseKind::CreateTopics(create_topics::handle(&ctx, r, version, &caller).await),
        RequestKind::DeleteTopics(r) => ResponseKind::DeleteTopics(delete_topics::handle(&ctx, r, version, &caller).await),
        RequestKind::DescribeConfigs(r) => ResponseKind::DescribeConfigs(describe_configs::handle(&ctx, r, version, &caller)),
        RequestKind::FindCoordinator(r) => ResponseKind::FindCoordinator(find_coordinator::handle(&ctx, r, version, &caller).await),
        RequestKind::JoinGroup(r) => ResponseKind::JoinGroup(join_group::handle(&ctx, r, version, &caller).await),
        RequestKind::SyncGroup(r) => ResponseKind::SyncGroup(sync_group::handle(&ctx, r, version, &caller).await),
        RequestKind::Heartbeat(r) => ResponseKind::Heartbeat(heartbeat::handle(&ctx, r, &caller).await),
        RequestKind::LeaveGroup(r) => ResponseKind::LeaveGroup(leave_group::handle(&ctx, r, version, &caller).await),
        RequestKind::OffsetCommit(r) => offset_commit::submit(ctx, r, version, &caller).await.await,
        RequestKind::OffsetFetch(r) => ResponseKind::OffsetFetch(offset_fetch::handle(&ctx, r, version, &caller).await),
        RequestKind::ListGroups(r) => ResponseKind::ListGroups(list_groups::handle(&ctx, r, version, &caller).await),
        RequestKind::DescribeGroups(r) => ResponseKind::DescribeGroups(describe_groups::handle(&ctx, r, version, &caller).await),
        RequestKind::DeleteGroups(r) => ResponseKind::DeleteGroups(delete_groups::handle(&ctx, r, &caller).await),
        RequestKind::InitProducerId(r) => ResponseKind::InitProducerId(init_producer_id::handle(&ctx, r, &caller).await),
        RequestKind::OffsetForLeaderEpoch(r) => ResponseKind::OffsetForLeaderEpoch(offset_for_leader_epoch::handle(&ctx, r, &caller).await),
        RequestKind::DeleteRecords(r) => ResponseKind::DeleteRecords(delete_records::handle(&ctx, r, &caller).await),
        RequestKind::DescribeCluster(r) => ResponseKind::DescribeCluster(describe_cluster::handle(&ctx, r, version, &caller)),
        RequestKind::AlterConfigs(r) => ResponseKind::AlterConfigs(alter_configs::handle(&ctx, r, &caller).await),
        RequestKind::CreatePartitions(r) => ResponseKind::CreatePartitions(create_partitions::handle(&ctx, r, &caller).await),
        RequestKind::ElectLeaders(r) => ResponseKind::ElectLeaders(elect_leaders::handle(&ctx, r, version, &caller).await),
        RequestKind::IncrementalAlterConfigs(r) => ResponseKind::IncrementalAlterConfigs(incremental_alter_configs::handle(&ctx, r, &caller).await),
        RequestKind::AlterPartitionReassignments(r) => {
            ResponseKind::AlterPartitionReassignments(alter_partition_reassignments::handle(&ctx, r, version, &caller).await)
        }
        RequestKind::DescribeLogDirs(r) => ResponseKind::DescribeLogDirs(describe_log_dirs::handle(&ctx, r, version, &caller)),
        RequestKind::ListPartitionReassignments(r) => ResponseKind::ListPartitionReassignments(list_partition_reassignments::handle(&ctx, r, &caller)),
        RequestKind::ConsumerGroupHeartbeat(r) => ResponseKind::ConsumerGroupHeartbeat(consumer_group_heartbeat::handle(&ctx, r, &caller).await),
        RequestKind::ConsumerGroupDescribe(r) => ResponseKind::ConsumerGroupDescribe(consumer_group_describe::handle(&ctx, r, version, &caller).await),
        RequestKind::OffsetDelete(r) => ResponseKind::OffsetDelete(offset_delete::handle(&ctx, r, &caller).await),
        RequestKind::DescribeProducers(r) => ResponseKind::DescribeProducers(describe_producers::handle(&ctx, r, &caller)),
        RequestKind::DescribeTopicPartitions(r) => ResponseKind::DescribeTopicPartitions(describe_topic_partitions::handle(&ctx, r, &caller)),
        RequestKind::DescribeQuorum(r) => ResponseKind::DescribeQuorum(describe_quorum::handle(&ctx, r, version, &caller)),
        RequestKind::ListConfigResources(r) => ResponseKind::ListConfigResources(list_config_resources::handle(&ctx, r, version, &caller)),
        RequestKind::DescribeUserScramCredentials(r) => ResponseKind::DescribeUserScramCredentials(describe_user_scram_credentials::handle(&ctx, r, &caller)),
        RequestKind::AlterUserScramCredentials(r) => ResponseKind::AlterUserScramCredentials(alter_user_scram_credentials::handle(&ctx, r, &caller).await),
        RequestKind::DescribeClientQuotas(r) => ResponseKind::DescribeClientQuotas(describe_client_quotas::handle(&ctx, r, &caller)),
        RequestKind::CreateAcls(r) => ResponseKind::CreateAcls(create_acls::handle(&ctx, r, &caller).await),
        RequestKind::DescribeAcls(r) => ResponseKind::DescribeAcls(describe_acls::handle(&ctx, r, &caller)),
        RequestKind::DeleteAcls(r) => ResponseKind::DeleteAcls(delete_acls::handle(&ctx, r, &caller).await),
        other => unreachable!("{other:?} passed the version table but has no handler"),
    }
}

/// Non-zero error codes in a response, for the error metric.
pub fn error_codes(resp: &ResponseKind) -> Vec<i16> {
    let codes: Vec<i16> = match resp {
        ResponseKind::Produce(r) => r.responses.iter().flat_map(|t| t.partition_responses.iter().map(|p| p.error_code)).collect(),
        ResponseKind::Fetch(r) => std::iter::once(r.error_code)
            .chain(r.responses.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code)))
            .collect(),
        ResponseKind::Metadata(r) => r.topics.iter().map(|t| t.error_code).collect(),
        ResponseKind::ListOffsets(r) => r.topics.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code)).collect(),
        ResponseKind::CreateTopics(r) => r.topics.iter().map(|t| t.error_code).collect(),
        ResponseKind::DeleteTopics(r) => r.responses.iter().map(|t| t.error_code).collect(),
        ResponseKind::DescribeConfigs(r) => r.results.iter().map(|t| t.error_code).collect(),
        ResponseKind::ApiVersions(r) => vec![r.error_code],
        ResponseKind::FindCoordinator(r) => std::iter::once(r.error_code).chain(r.coordinators.iter().map(|c| c.error_code)).collect(),
        ResponseKind::JoinGroup(r) => vec![r.error_code],
        ResponseKind::SyncGroup(r) => vec![r.error_code],
        ResponseKind::Heartbeat(r) => vec![r.error_code],
        ResponseKind::LeaveGroup(r) => std::iter::once(r.error_code).chain(r.members.iter().map(|m| m.error_code)).collect(),
        ResponseKind::OffsetCommit(r) => r.topics.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code)).collect(),
        ResponseKind::OffsetFetch(r) => std::iter::once(r.error_code).chain(r.groups.iter().map(|g| g.error_code)).collect(),
        ResponseKind::ListGroups(r) => vec![r.error_code],
        ResponseKind::DescribeGroups(r) => r.groups.iter().map(|g| g.error_code).collect(),
        ResponseKind::DeleteGroups(r) => r.results.iter().map(|g| g.error_code).collect(),
        ResponseKind::InitProducerId(r) => vec![r.error_code],
        ResponseKind::DeleteRecords(r) => r.topics.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code)).collect(),
        ResponseKind::OffsetForLeaderEpoch(r) => r.topics.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code)).collect(),
        ResponseKind::AlterConfigs(r) => r.responses.iter().map(|r| r.error_code).collect(),
        ResponseKind::CreatePartitions(r) => r.results.iter().map(|r| r.error_code).collect(),
        ResponseKind::ElectLeaders(r) => {
            std::iter::once(r.error_code)
            .chain(r.replica_election_results.iter().flat_map(|t| t.partition_result.iter().map(|p| p.error_code)))
            .collect()
        }
        ResponseKind::IncrementalAlterConfigs(r) => r.responses.iter().map(|r| r.error_code).collect(),
        ResponseKind::AlterPartitionReassignments(r) => {
            std::iter::once(r.error_code)
            .chain(r.responses.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code)))
            .collect()
        }
        ResponseKind::ListPartitionReassignments(r) => vec![r.error_code],
        ResponseKind::DescribeLogDirs(r) => std::iter::once(r.error_code).chain(r.results.iter().map(|d| d.error_code)).collect(),
        ResponseKind::ConsumerGroupHeartbeat(r) => vec![r.error_code],
        ResponseKind::ConsumerGroupDescribe(r) => r.groups.iter().map(|g| g.error_code).collect(),
        ResponseKind::OffsetDelete(r) => std::iter::once(r.error_code).chain(r.topics.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code))).collect(),
        ResponseKind::DescribeProducers(r) => r.topics.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code)).collect(),
        ResponseKind::DescribeTopicPartitions(r) => r.topics.iter().map(|t| t.error_code).collect(),
        ResponseKind::DescribeQuorum(r) => {
            std::iter::once(r.error_code).chain(r.topics.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code))).collect()
        }
        ResponseKind::ListConfigResources(r) => vec![r.error_code],
        ResponseKind::DescribeUserScramCredentials(r) => std::iter::once(r.error_code).chain(r.results.iter().map(|u| u.error_code)).collect(),
        ResponseKind::AlterUserScramCredentials(r) => r.results.iter().map(|u| u.error_code).collect(),
        ResponseKind::DescribeClientQuotas(r) => vec![r.error_code],
        ResponseKind::CreateAcls(r) => r.results.iter().map(|a| a.error_code).collect(),
        ResponseKind::DescribeAcls(r) => vec![r.error_code],
        ResponseKind::DeleteAcls(r) => r.filter_results.iter().map(|f| f.error_code).collect(),
        _ => vec![],
    };
    codes.into_iter().filter(|c| *c != 0).collect()
}

/// Kafka's config resource types.
pub(crate) const RESOURCE_TOPIC: i8 = 2;
pub(crate) const RESOURCE_BROKER: i8 = 4;

/// The resource a config request names: a topic, a broker by id, or (an
/// empty broker name) the cluster-wide broker defaults.
pub(crate) fn config_resource(resource_type: i8, name: &str) -> Result<ConfigResource, (i16, String)> {
    match resource_type {
        RESOURCE_TOPIC => Ok(ConfigResource::Topic(name.to_string())),
        RESOURCE_BROKER if name.is_empty() => Ok(ConfigResource::Broker(None)),
        RESOURCE_BROKER => name
            .parse::<u64>()
            .map(|n| ConfigResource::Broker(Some(n)))
            .map_err(|_| (crate::errors::INVALID_REQUEST, format!("broker {name:?} is not a node id"))),
        other => Err((crate::errors::INVALID_REQUEST, format!("config resource type {other} is not supported"))),
    }
}

/// Whether the principal may `op` (DESCRIBE_CONFIGS, ALTER_CONFIGS) the
/// resource: a topic by its name, a broker (or the cluster's defaults) on
/// the cluster.
pub(crate) fn config_authorized<S: PartitionStore>(
    ctx: &Context<S>,
    caller: &Caller,
    r: ConfigResource,
    op: Operation,
) -> Result<ConfigResource, (i16, String)> {
    let authz = ctx.authz(caller);
    match &r {
        ConfigResource::Topic(t) if !authz.topic(op, t) => Err((crate::errors::TOPIC_AUTHORIZATION_FAILED, "Topic authorization failed.".into())),
        ConfigResource::Broker(_) if !authz.cluster(op) => Err((crate::errors::CLUSTER_AUTHORIZATION_FAILED, "Cluster authorization failed.".into())),
        _ => Ok(r),
    }
}

/// AlterConfigs and IncrementalAlterConfigs: one resource's change, as an
/// error code and message for its response.
pub(crate) async fn alter_configs<S: PartitionStore>(
    ctx: &Context<S>,
    caller: &Caller,
    resource_type: i8,
    name: &str,
    ops: Vec<ConfigOp>,
    replace: bool,
    validate_only: bool,
) -> (i16, Option<String>) {
    let resource = match config_resource(resource_type, name).and_then(|r| config_authorized(ctx, caller, r, Operation::AlterConfigs)) {
        Ok(r) => r,
        Err((code, why)) => return (code, Some(why)),
    };
    match ctx.store.alter_configs(resource.clone(), ops, replace, validate_only).await {
        Ok(()) => (crate::errors::NONE, None),
        Err(e) => {
            tracing::info!(%resource, error = %e, "config change refused");
            (crate::errors::code(&e), Some(e.to_string()))
        }
    }
}

/// The topic a request names: by name, or by topic id in the versions
/// that address topics so (Produce v13, Fetch v13+). An unknown id is
/// UNKNOWN_TOPIC_ID, as Kafka answers it.
pub(crate) fn topic_named<S: PartitionStore>(ctx: &Context<S>, name: &TopicName, id: uuid::Uuid, by_id: bool) -> Result<String, i16> {
    if !by_id {
        return Ok(name.0.to_string());
    }
    ctx.store.topic_name(id.as_u128()).ok_or(crate::errors::UNKNOWN_TOPIC_ID)
}

/// Topic `name`'s id for a response (the nil id for an unknown topic).
pub(crate) fn topic_uuid<S: PartitionStore>(ctx: &Context<S>, name: &str) -> uuid::Uuid {
    ctx.store.topic_id(name).map(uuid::Uuid::from_u128).unwrap_or_default()
}

pub fn str(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}
