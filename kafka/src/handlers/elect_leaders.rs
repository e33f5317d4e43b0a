//! ElectLeaders (API 43): `kafka-leader-election.sh`. A preferred election
//! hands each partition's leadership to its first replica (through the node
//! leading it now); an unclean one has no meaning in Raft (a replica without
//! the committed records never becomes leader), so each partition answers
//! as Kafka does when no election is needed or possible. All partitions
//! when the request names none.

use chronik::{PartitionStore, StoreError, TopicPartition};
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse, TopicName};
use tracing::info;

use crate::errors;
use crate::server::{Caller, Context};
use chronik::security::acl::Operation;

const PREFERRED: i8 = 0;

pub async fn handle<S: PartitionStore>(ctx: &Context<S>, req: ElectLeadersRequest, version: i16, caller: &Caller) -> ElectLeadersResponse {
    if !ctx.authz(caller).cluster(Operation::Alter) {
        return ElectLeadersResponse::default().with_error_code(crate::errors::CLUSTER_AUTHORIZATION_FAILED);
    }
    let tps: Vec<TopicPartition> = match &req.topic_partitions {
        Some(topics) => topics.iter().flat_map(|t| t.partitions.iter().map(|p| TopicPartition::new(t.topic.0.as_str(), *p))).collect(),
        None => {
            ctx
            .store
            .cluster_view(None)
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| TopicPartition::new(t.name.as_str(), p.partition)))
            .collect()
        }
    };
    let timeout = std::time::Duration::from_millis(req.timeout_ms.max(0) as u64);
    let elections = tps.iter().map(|tp| async move {
        let result = if version >= 1 && req.election_type != PREFERRED {
            unclean(ctx, tp)
        } else {
            match tokio::time::timeout(timeout, ctx.store.elect_preferred_leader(tp)).await {
                Ok(r) => r,
                Err(_) => Err(StoreError::Timeout(tp.clone())),
            }
        };
        info!(partition = %tp, election_type = req.election_type, result = ?result.as_ref().err().map(|e| e.to_string()), "ElectLeaders");
        result
    });
    let results = futures::future::join_all(elections).await;
    let mut resp = ElectLeadersResponse::default();
    for (tp, result) in tps.iter().zip(results) {
        let mut p = PartitionResult::default();
        p.partition_id = tp.partition;
        if let Err(e) = result {
            p.error_code = errors::code(&e);
            p.error_message = Some(super::str(e.to_string()));
        }
        match resp.replica_election_results.iter_mut().find(|r| *r.topic.0 == *tp.topic) {
            Some(r) => r.partition_result.push(p),
            None => {
                let mut r = ReplicaElectionResult::default();
                r.topic = TopicName(super::str(tp.topic.to_string()));
                r.partition_result.push(p);
                resp.replica_election_results.push(r);
            }
        }
    }
    resp
}

/// An unclean election: never needed while the partition has a leader, and
/// never possible without one (Raft elects only replicas with every
/// committed record).
fn unclean<S: PartitionStore>(ctx: &Context<S>, tp: &TopicPartition) -> Result<(), StoreError> {
    let view = ctx.store.cluster_view(Some(&[tp.topic.to_string()]));
    match view.topics.first().and_then(|t| t.partitions.get(tp.partition as usize)) {
        None => Err(StoreError::UnknownTopicOrPartition(tp.clone())),
        Some(p) if p.leader.is_some() => Err(StoreError::ElectionNotNeeded(tp.clone())),
        Some(_) => Err(StoreError::LeaderNotAvailable(tp.clone())),
    }
}
