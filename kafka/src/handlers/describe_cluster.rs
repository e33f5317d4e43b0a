use chronik::PartitionStore;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterResponse};

use crate::server::Context;

pub fn handle<S: PartitionStore>(ctx: &Context<S>, version: i16) -> DescribeClusterResponse {
    let view = ctx.store.cluster_view(Some(&[]));
    let controller = view.controller_for_clients(ctx.store.node_id());
    // v2's include_fenced_brokers changes nothing: no node here is fenced.
    let mut resp = DescribeClusterResponse::default()
        .with_cluster_id(super::str(view.cluster_id))
        .with_controller_id(BrokerId(controller as i32));
    if version >= 1 {
        resp.endpoint_type = 1; // brokers
    }
    resp.brokers = view
        .nodes
        .into_iter()
        .map(|n| DescribeClusterBroker::default().with_broker_id(BrokerId(n.id as i32)).with_host(super::str(n.host)).with_port(n.port).with_rack(n.rack.map(super::str)))
        .collect();
    resp
}
