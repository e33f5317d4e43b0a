use std::sync::Arc;
use std::time::Duration;

use chronik::security::acl::Operation;

use chronik::{Acks, PartitionStore, TopicPartition};
use futures::future::BoxFuture;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, ResponseKind};
use tracing::warn;

use crate::errors;
use crate::server::{Caller, Context};

fn partition_error(version: i16, index: i32, code: i16, message: Option<String>) -> PartitionProduceResponse {
    let mut p = PartitionProduceResponse::default();
    p.index = index;
    p.error_code = code;
    p.base_offset = -1;
    p.log_append_time_ms = -1;
    p.log_start_offset = -1;
    if version >= 8 {
        p.error_message = message.map(super::str);
    }
    p
}

/// Stage one, run in request order: wait (bounded, all partitions at once)
/// for partitions whose election can end here, then validate and queue every
/// partition's batch into its Raft log, in request order. Stage two, the
/// returned future: wait until each meets the acks level, all under one
/// deadline (the request's timeout). None for acks=0 (no response is sent).
pub async fn submit<S: PartitionStore>(
    ctx: Arc<Context<S>>,
    req: ProduceRequest,
    version: i16, caller: &Caller) -> Option<BoxFuture<'static, ResponseKind>> {
    let acks = Acks::from_kafka(req.acks);
    let timeout = Duration::from_millis(req.timeout_ms.max(1) as u64);
    let deadline = tokio::time::Instant::now() + timeout;
    // Produce v13 names topics by id; an unknown one fails its partitions.
    // A topic the principal may not WRITE fails its partitions.
    let authz = ctx.authz(caller);
    let named: Vec<Result<String, i16>> = req.topic_data.iter().map(|t| super::topic_named(&ctx, &t.name, t.topic_id, version >= 13)).map(|n| n.and_then(|name| if authz.topic(Operation::Write, &name) { Ok(name) } else { Err(errors::TOPIC_AUTHORIZATION_FAILED) }))
        .collect();
    drop(authz);
    let tps: Vec<(TopicPartition, bool)> = req
        .topic_data
        .iter()
        .zip(&named)
        .flat_map(|(t, n)| t.partition_data.iter().map(move |p| (TopicPartition::new(n.as_deref().unwrap_or_default(), p.index), n.is_ok())))
        .collect();
    futures::future::join_all(tps.iter().filter(|(_, known)| *known).map(|(tp, _)| ctx.store.leader_ready(tp, deadline))).await;
    let mut pending = Vec::new();
    let bytes_in = ctx.metrics.kafka_bytes_in.get_or_create(&ctx.metrics.node()).clone();
    let mut tps = tps.into_iter().map(|(tp, _)| tp);
    for (topic, named) in req.topic_data.into_iter().zip(named) {
        let mut parts = Vec::new();
        for p in topic.partition_data {
            let tp = tps.next().expect("one per partition");
            let result = match (acks, p.records) {
                _ if named == Err(errors::TOPIC_AUTHORIZATION_FAILED) => Err((errors::TOPIC_AUTHORIZATION_FAILED, "Topic authorization failed.".to_string())),
                _ if named.is_err() => Err((errors::UNKNOWN_TOPIC_ID, format!("no topic has id {}", topic.topic_id))),
                (None, _) => Err((errors::INVALID_REQUIRED_ACKS, format!("acks={} is not one of 0, 1, -1", req.acks))),
                (_, None) => Err((errors::CORRUPT_MESSAGE, format!("no records for {tp}"))),
                (Some(acks), Some(records)) => {
                    let len = records.len() as u64;
                    match ctx.store.append(tp.clone(), records, acks).await {
                        Ok(pending) => {
                            bytes_in.inc_by(len);
                            Ok(pending)
                        }
                        Err(e) => {
                            warn!(partition = %tp, error = %e, "produce rejected");
                            Err((errors::code(&e), e.to_string()))
                        }
                    }
                }
            };
            parts.push((p.index, result));
        }
        pending.push((topic.name, topic.topic_id, parts));
    }
    let wait = async move {
        let mut resp = ProduceResponse::default();
        for (name, topic_id, parts) in pending {
            let mut t = TopicProduceResponse::default();
            t.name = name;
            t.topic_id = topic_id;
            for (index, result) in parts {
                let p = match result {
                    Err((code, msg)) => partition_error(version, index, code, Some(msg)),
                    Ok(pending) => match tokio::time::timeout_at(deadline, pending).await {
                        Ok(Ok(a)) => {
                            let mut p = partition_error(version, index, errors::NONE, None);
                            p.base_offset = a.base_offset;
                            if version >= 2 {
                                p.log_append_time_ms = a.log_append_time_ms;
                            }
                            if version >= 5 {
                                p.log_start_offset = a.log_start_offset;
                            }
                            p
                        }
                        Ok(Err(e)) => partition_error(version, index, errors::code(&e), Some(e.to_string())),
                        Err(_) => partition_error(
                            version,
                            index,
                            errors::REQUEST_TIMED_OUT,
                            Some(format!("not committed within the request's {} ms; outcome unknown", timeout.as_millis())),
                        ),
                    },
                };
                t.partition_responses.push(p);
            }
            resp.responses.push(t);
        }
        ResponseKind::Produce(resp)
    };
    if acks == Some(Acks::None) {
        // Still drive the writes to completion; just tell no one.
        tokio::spawn(async move {
            let _ = wait.await;
        });
        return None;
    }
    Some(Box::pin(wait))
}
