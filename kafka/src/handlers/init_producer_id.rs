use chronik::PartitionStore;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use tracing::{info, warn};

use crate::errors;
use crate::server::{Caller, Context};
use chronik::security::acl::{Operation, ResourceType};

/// An idempotent producer gets a fresh id at epoch 0, every time (as Kafka
/// does without a transactional id, also for an epoch bump after KIP-360).
/// An idempotent producer needs IDEMPOTENT_WRITE on the cluster or WRITE
/// on some topic (KIP-679), else CLUSTER_AUTHORIZATION_FAILED.
pub async fn handle<S: PartitionStore>(ctx: &Context<S>, req: InitProducerIdRequest, caller: &Caller) -> InitProducerIdResponse {
    let resp = InitProducerIdResponse::default().with_producer_id(ProducerId(-1)).with_producer_epoch(-1);
    let authz = ctx.authz(caller);
    if req.transactional_id.as_ref().is_none_or(|t| t.0.is_empty())
        && !authz.cluster(Operation::IdempotentWrite)
        && !authz.any(Operation::Write, ResourceType::Topic)
    {
        return resp.with_error_code(errors::CLUSTER_AUTHORIZATION_FAILED);
    }
    if let Some(txn) = req.transactional_id.as_ref().filter(|t| !t.0.is_empty()) {
        warn!(transactional_id = %txn.0, "InitProducerId for a transactional producer: Chronik has no transactions");
        return resp.with_error_code(errors::TRANSACTIONAL_ID_AUTHORIZATION_FAILED);
    }
    if req.enable_2_pc {
        // v6 (KIP-939): two-phase commit needs a transactional id, which Chronik refuses above.
        return resp.with_error_code(errors::INVALID_REQUEST);
    }
    match ctx.store.allocate_producer_id().await {
        Ok(id) => {
            // Rare (once per producer, or after a client-side epoch bump),
            // and what to look for when a client's retries misbehave.
            info!(producer_id = id, previous_id = req.producer_id.0, previous_epoch = req.producer_epoch, "producer id assigned");
            resp.with_producer_id(ProducerId(id)).with_producer_epoch(0)
        }
        Err(e) => {
            warn!(error = %e, "no producer id");
            resp.with_error_code(errors::COORDINATOR_NOT_AVAILABLE)
        }
    }
}
