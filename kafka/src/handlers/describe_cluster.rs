use chronik::PartitionStore;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterResponse};

use crate::server::{Caller, Context};
use chronik::security::acl::{ResourceType, CLUSTER_NAME};

/// Open to every principal, as in Kafka; the authorized operations only
/// when asked.
pub fn handle<S: PartitionStore>(ctx: &Context<S>,
    req: kafka_protocol::messages::DescribeClusterRequest,
    version: i16,
    caller: &Caller,
) -> DescribeClusterResponse {
    let authz = ctx.authz(caller);
    let listener: &str = &caller.listener;
    let view = ctx.store.cluster_view(Some(&[]));
    let controller = view.controller_for_clients(ctx.store.node_id());
    // v2's include_fenced_brokers changes nothing: no node here is fenced.
    let mut resp = DescribeClusterResponse::default()
        .with_cluster_id(super::str(view.cluster_id))
        .with_controller_id(BrokerId(controller as i32));
    if version >= 1 {
        resp.endpoint_type = 1; // brokers
    }
    if req.include_cluster_authorized_operations {
        resp.cluster_authorized_operations = authz.operations(ResourceType::Cluster, CLUSTER_NAME);
    }
    resp.brokers = view
        .nodes
        .into_iter()
        .filter_map(|n| {
            let (host, port) = n.endpoint(listener)?;
            Some(
                DescribeClusterBroker::default().with_broker_id(BrokerId(n.id as i32)).with_host(super::str(host)).with_port(port).with_rack(n.rack.map(super::str)))
        })
        .collect();
    resp
}
