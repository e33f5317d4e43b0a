use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiVersionsResponse, ResponseKind};

use crate::apis::SUPPORTED;
use crate::errors;

/// Exactly the versions we implement. No optional tagged fields (supported
/// features...): Debian's kcat (librdkafka 2.0.2) fails to parse them.
pub fn handle() -> ApiVersionsResponse {
    let mut r = ApiVersionsResponse::default();
    r.api_keys = SUPPORTED
        .iter()
        .map(|(k, min, max)| {
            let mut v = ApiVersion::default();
            v.api_key = *k as i16;
            v.min_version = *min;
            v.max_version = *max;
            v
        })
        .collect();
    r
}

/// v5 (KIP-1242): a client that names the cluster or node it expects and
/// reached another is told to bootstrap again (REBOOTSTRAP_REQUIRED).
pub fn answer<S: chronik::PartitionStore>(ctx: &crate::server::Context<S>, req: &kafka_protocol::messages::ApiVersionsRequest) -> ApiVersionsResponse {
    let mut r = handle();
    let other_node = req.node_id >= 0 && req.node_id as u64 != ctx.store.node_id();
    let other_cluster = req.cluster_id.as_ref().is_some_and(|c| *c.as_str() != ctx.store.cluster_view(Some(&[])).cluster_id);
    if other_node || other_cluster {
        r.error_code = errors::REBOOTSTRAP_REQUIRED;
    }
    r
}

pub fn unsupported() -> ResponseKind {
    let mut r = handle();
    r.error_code = errors::UNSUPPORTED_VERSION;
    ResponseKind::ApiVersions(r)
}
