//! ListConfigResources (KIP-1142; v0 was ListClientMetricsResources): the
//! resources that can have configs, by type. Chronik keeps configs for
//! topics and brokers; it has no client-metrics or group config resources,
//! so those types list nothing.

use chronik::PartitionStore;
use kafka_protocol::messages::list_config_resources_response::ConfigResource;
use kafka_protocol::messages::{ListConfigResourcesRequest, ListConfigResourcesResponse};

use super::{RESOURCE_BROKER, RESOURCE_TOPIC};
use crate::errors;
use crate::server::{Caller, Context};
use chronik::security::acl::Operation;

const RESOURCE_CLIENT_METRICS: i8 = 16;
const RESOURCE_GROUP: i8 = 32;

pub fn handle<S: PartitionStore>(ctx: &Context<S>, req: ListConfigResourcesRequest, version: i16, caller: &Caller) -> ListConfigResourcesResponse {
    if !ctx.authz(caller).cluster(Operation::DescribeConfigs) {
        return ListConfigResourcesResponse::default().with_error_code(crate::errors::CLUSTER_AUTHORIZATION_FAILED);
    }
    let mut resp = ListConfigResourcesResponse::default();
    // v0 lists client-metrics resources only; v1 the types asked for (all when none).
    let types = match (version, req.resource_types.is_empty()) {
        (0, _) => vec![RESOURCE_CLIENT_METRICS],
        (_, true) => vec![RESOURCE_TOPIC, RESOURCE_BROKER, RESOURCE_CLIENT_METRICS, RESOURCE_GROUP],
        _ => req.resource_types,
    };
    if let Some(t) = types.iter().find(|t| ![RESOURCE_TOPIC, RESOURCE_BROKER, RESOURCE_CLIENT_METRICS, RESOURCE_GROUP].contains(t)) {
        resp.error_code = errors::UNSUPPORTED_VERSION;
        tracing::debug!(resource_type = t, "ListConfigResources for a resource type without configs");
        return resp;
    }
    let view = ctx.store.cluster_view(None);
    let resource = |name: String, kind: i8| ConfigResource::default().with_resource_name(super::str(name)).with_resource_type(kind);
    for t in types {
        match t {
            RESOURCE_TOPIC => resp.config_resources.extend(view.topics.iter().map(|topic| resource(topic.name.clone(), t))),
            RESOURCE_BROKER => resp.config_resources.extend(view.nodes.iter().map(|n| resource(n.id.to_string(), t))),
            _ => {}
        }
    }
    resp
}
