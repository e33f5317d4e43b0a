//! CreatePartitions (API 37): grows topics (`kafka-topics.sh --alter
//! --partitions`). Each new partition is a new Raft group, placed
//! round-robin after the topic's own or as the request assigns it; records
//! already written stay where they are (keys may now hash elsewhere, as in
//! Kafka).

use chronik::PartitionStore;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use tracing::info;

use crate::errors;
use crate::server::{Caller, Context};
use chronik::security::acl::Operation;

pub async fn handle<S: PartitionStore>(ctx: &Context<S>, req: CreatePartitionsRequest, caller: &Caller) -> CreatePartitionsResponse {
    let authz = ctx.authz(caller);
    let mut resp = CreatePartitionsResponse::default();
    let mut seen = std::collections::HashSet::new();
    for t in req.topics {
        let name = t.name.0.to_string();
        let mut r = CreatePartitionsTopicResult::default();
        r.name = t.name.clone();
        let assignment = t.assignments.as_ref().map(|a| a.iter().map(|p| p.broker_ids.iter().map(|b| b.0 as u64).collect::<Vec<_>>()).collect::<Vec<_>>());
        let result = if !authz.topic(Operation::Alter, &name) {
            Err((errors::TOPIC_AUTHORIZATION_FAILED, "Topic authorization failed.".to_string()))
        } else if !seen.insert(name.clone()) {
            Err((errors::INVALID_REQUEST, format!("topic {name} appears more than once in the request")))
        } else {
            ctx.store.create_partitions(name.clone(), t.count, assignment, req.validate_only).await.map_err(|e| (errors::code(&e), e.to_string()))
        };
        match result {
            Ok(()) => {
                info!(topic = %name, count = t.count, validate_only = req.validate_only, "CreatePartitions succeeded")
            }
            Err((code, message)) => {
                info!(topic = %name, count = t.count, error = %message, "CreatePartitions refused");
                r.error_code = code;
                r.error_message = Some(super::str(message));
            }
        }
        resp.results.push(r);
    }
    resp
}
