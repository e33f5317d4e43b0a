//! DeleteRecords (API 21): moves partitions' log start forward, as
//! `kafka-delete-records.sh` and AdminClient.deleteRecords ask. Each
//! partition's trim is replicated through its Raft group; all of a request's
//! partitions are trimmed at once, within its timeout.

use chronik::{PartitionStore, StoreError, TopicPartition};
use kafka_protocol::messages::delete_records_response::{DeleteRecordsPartitionResult, DeleteRecordsTopicResult};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};
use tracing::info;

use crate::errors;
use crate::server::{Caller, Context};
use chronik::security::acl::Operation;

pub async fn handle<S: PartitionStore>(ctx: &Context<S>, req: DeleteRecordsRequest, caller: &Caller) -> DeleteRecordsResponse {
    // DELETE on the topic; a refused topic's partitions are left alone.
    let authz = ctx.authz(caller);
    let allowed: std::collections::HashSet<String> = req.topics.iter().map(|t| t.name.0.to_string()).filter(|t| authz.topic(Operation::Delete, t)).collect();
    drop(authz);
    let timeout = std::time::Duration::from_millis(req.timeout_ms.max(0) as u64);
    let deadline = tokio::time::Instant::now() + timeout;
    let tps: Vec<TopicPartition> =
        req.topics.iter().flat_map(|t| t.partitions.iter().map(|p| TopicPartition::new(t.name.0.as_str(), p.partition_index))).collect();
    super::leaders_ready(ctx, tps.iter(), deadline).await;
    let trims = req.topics.iter().filter(|t| allowed.contains(t.name.0.as_str())).flat_map(|t| t.partitions.iter().map(move |p| (t, p))).map(|(t, p)| async move {
        let tp = TopicPartition::new(t.name.0.as_str(), p.partition_index);
        let result = match tokio::time::timeout_at(deadline, ctx.store.delete_records(&tp, p.offset)).await {
            Ok(r) => r,
            Err(_) => Err(StoreError::Timeout(tp.clone())),
        };
        match &result {
            Ok(low) => info!(partition = %tp, requested = p.offset, low_watermark = low, "DeleteRecords"),
            Err(e) => info!(partition = %tp, requested = p.offset, error = %e, "DeleteRecords refused"),
        }
        result
    });
    let mut results = futures::future::join_all(trims).await.into_iter();
    let mut resp = DeleteRecordsResponse::default();
    for topic in &req.topics {
        let mut t = DeleteRecordsTopicResult::default();
        t.name = topic.name.clone();
        for p in &topic.partitions {
            let mut out = DeleteRecordsPartitionResult::default();
            out.partition_index = p.partition_index;
            if !allowed.contains(topic.name.0.as_str()) {
                out.low_watermark = -1;
                out.error_code = errors::TOPIC_AUTHORIZATION_FAILED;
                t.partitions.push(out);
                continue;
            }
            match results.next().expect("one result per partition") {
                Ok(low) => out.low_watermark = low,
                Err(e) => {
                    out.low_watermark = -1;
                    out.error_code = errors::code(&e);
                }
            }
            t.partitions.push(out);
        }
        resp.topics.push(t);
    }
    resp
}
