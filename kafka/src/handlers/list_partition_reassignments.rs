//! ListPartitionReassignments (API 46): `kafka-reassign-partitions.sh
//! --verify` and `--list`. The moves in progress, from the controller's
//! metadata as this node has it: each partition's replicas (the target's
//! first, then those leaving), the ones joining and the ones leaving.

use chronik::PartitionStore;
use kafka_protocol::messages::list_partition_reassignments_response::{OngoingPartitionReassignment, OngoingTopicReassignment};
use kafka_protocol::messages::{BrokerId, ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, TopicName};

use crate::server::{Caller, Context};
use chronik::security::acl::Operation;

pub fn handle<S: PartitionStore>(ctx: &Context<S>, req: ListPartitionReassignmentsRequest, caller: &Caller) -> ListPartitionReassignmentsResponse {
    if !ctx.authz(caller).cluster(Operation::Describe) {
        return ListPartitionReassignmentsResponse::default().with_error_code(crate::errors::CLUSTER_AUTHORIZATION_FAILED);
    }
    let names: Option<Vec<String>> = req.topics.as_ref().map(|t| t.iter().map(|t| t.name.0.to_string()).collect());
    let view = ctx.store.cluster_view(names.as_deref());
    let brokers = |ids: &[chronik::NodeId]| ids.iter().map(|n| BrokerId(*n as i32)).collect::<Vec<_>>();
    let mut resp = ListPartitionReassignmentsResponse::default();
    for t in &view.topics {
        let asked: Option<&Vec<i32>> = req.topics.as_ref().and_then(|ts| ts.iter().find(|x| *x.name.0 == *t.name)).map(|x| &x.partition_indexes);
        let mut topic = OngoingTopicReassignment::default();
        topic.name = TopicName(super::str(t.name.clone()));
        for p in t.partitions.iter().filter(|p| p.reassigning && asked.is_none_or(|a| a.contains(&p.partition))) {
            let mut o = OngoingPartitionReassignment::default();
            o.partition_index = p.partition;
            o.replicas = brokers(&p.replicas);
            o.adding_replicas = brokers(&p.adding);
            o.removing_replicas = brokers(&p.removing);
            topic.partitions.push(o);
        }
        if !topic.partitions.is_empty() {
            resp.topics.push(topic);
        }
    }
    resp
}
