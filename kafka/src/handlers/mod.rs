//! One file per Kafka API; each turns a request into calls on the partition
//! store and its results into a response.

pub mod api_versions;
pub mod create_topics;
pub mod delete_topics;
pub mod describe_configs;
pub mod fetch;
pub mod list_offsets;
pub mod metadata;
pub mod produce;

use std::sync::Arc;

use chronik::PartitionStore;
use kafka_protocol::messages::{RequestKind, ResponseKind};
use kafka_protocol::protocol::StrBytes;

use crate::server::Context;

pub async fn dispatch<S: PartitionStore>(ctx: Arc<Context<S>>, req: RequestKind, version: i16) -> ResponseKind {
    match req {
        RequestKind::ApiVersions(_) => ResponseKind::ApiVersions(api_versions::handle()),
        RequestKind::Metadata(r) => ResponseKind::Metadata(metadata::handle(&ctx, r, version).await),
        RequestKind::Fetch(r) => ResponseKind::Fetch(fetch::handle(&ctx, r, version).await),
        RequestKind::ListOffsets(r) => ResponseKind::ListOffsets(list_offsets::handle(&ctx, r, version).await),
        RequestKind::CreateTopics(r) => ResponseKind::CreateTopics(create_topics::handle(&ctx, r, version).await),
        RequestKind::DeleteTopics(r) => ResponseKind::DeleteTopics(delete_topics::handle(&ctx, r, version).await),
        RequestKind::DescribeConfigs(r) => ResponseKind::DescribeConfigs(describe_configs::handle(&ctx, r, version)),
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
        _ => vec![],
    };
    codes.into_iter().filter(|c| *c != 0).collect()
}

pub fn str(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}
