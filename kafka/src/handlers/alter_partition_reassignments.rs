//! AlterPartitionReassignments (API 45): `kafka-reassign-partitions.sh
//! --execute` and `--cancel`. Each partition names its target replicas, or
//! none to cancel its move; each is answered on its own. The moves are
//! recorded by the controller and carried out by each partition's leader
//! through Raft membership changes (`chronik::reassignment`), so the answer
//! comes once they have started, not once they are done.

use chronik::{NodeId, PartitionStore, TopicPartition};
use kafka_protocol::messages::alter_partition_reassignments_response::{ReassignablePartitionResponse, ReassignableTopicResponse};
use kafka_protocol::messages::{AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse};

use crate::errors;
use crate::server::{Caller, Context};
use chronik::security::acl::Operation;

pub async fn handle<S: PartitionStore>(ctx: &Context<S>, req: AlterPartitionReassignmentsRequest, version: i16,
    caller: &Caller,
) -> AlterPartitionReassignmentsResponse {
    if !ctx.authz(caller).cluster(Operation::Alter) {
        return AlterPartitionReassignmentsResponse::default().with_error_code(crate::errors::CLUSTER_AUTHORIZATION_FAILED);
    }
    let mut moves: Vec<(TopicPartition, Option<Vec<NodeId>>)> = Vec::new();
    // A node id Kafka cannot hold (negative) is no node of ours: refused per partition.
    let mut bad: Vec<(TopicPartition, String)> = Vec::new();
    for t in &req.topics {
        for p in &t.partitions {
            let tp = TopicPartition::new(t.name.0.as_str(), p.partition_index);
            match &p.replicas {
                Some(r) if r.iter().any(|b| b.0 < 0) => {
                    bad.push((tp, format!("replicas {:?} name a negative broker id", r.iter().map(|b| b.0).collect::<Vec<_>>())))
                }
                r => moves.push((tp, r.as_ref().map(|r| r.iter().map(|b| b.0 as NodeId).collect()))),
            }
        }
    }
    // v0 has no flag: a change of replication factor was always allowed.
    let allow_rf_change = version == 0 || req.allow_replication_factor_change;
    let results = if moves.is_empty() { vec![] } else { ctx.store.reassign_partitions(moves.clone(), allow_rf_change).await };
    let mut resp = AlterPartitionReassignmentsResponse::default();
    if version >= 1 {
        resp.allow_replication_factor_change = req.allow_replication_factor_change;
    }
    let answers = moves
        .iter()
        .map(|(tp, _)| tp)
        .zip(results.iter().map(|r| r.as_ref().err().map(|e| (errors::code(e), e.to_string()))))
        .chain(bad.iter().map(|(tp, why)| (tp, Some((errors::INVALID_REPLICA_ASSIGNMENT, why.clone())))));
    for (tp, error) in answers {
        let mut p = ReassignablePartitionResponse::default();
        p.partition_index = tp.partition;
        if let Some((code, message)) = error {
            p.error_code = code;
            p.error_message = Some(super::str(message));
        }
        match resp.responses.iter_mut().find(|r| *r.name.0 == *tp.topic) {
            Some(r) => r.partitions.push(p),
            None => {
                let mut r = ReassignableTopicResponse::default();
                r.name = kafka_protocol::messages::TopicName(super::str(tp.topic.to_string()));
                r.partitions.push(p);
                resp.responses.push(r);
            }
        }
    }
    resp
}
