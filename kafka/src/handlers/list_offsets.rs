use chronik::{PartitionStore, StoreError, TopicPartition};
use kafka_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use kafka_protocol::records::RecordBatchDecoder;

use crate::errors;
use crate::server::{Caller, Context};
use chronik::security::acl::Operation;

// Kafka's special timestamps (ListOffsetsRequest.json).
const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
/// v7+: the record with the newest timestamp (KIP-734).
const MAX_TIMESTAMP: i64 = -3;
/// v8+: the first offset held locally (KIP-405); with no tiered storage,
/// the log start.
const EARLIEST_LOCAL: i64 = -4;
/// v9+: the last offset in tiered storage (KIP-1005); none here.
const LATEST_TIERED: i64 = -5;
/// v11+: the first offset not yet uploaded to tiered storage (KIP-1023); none here.
const EARLIEST_PENDING_UPLOAD: i64 = -6;

/// The first record at or after `timestamp`: the store finds the batch by its
/// max timestamp, then the records inside it are decoded (off the hot path).
fn by_timestamp<S: PartitionStore>(ctx: &Context<S>, tp: &TopicPartition, timestamp: i64) -> Result<Option<(i64, i64)>, StoreError> {
    let Some(batch) = ctx.store.batch_at_timestamp(tp, timestamp)? else { return Ok(None);
    };
    let mut buf = batch.clone();
    // The first batch may hold records below the log start: never those.
    let (log_start, _) = ctx.store.offsets(tp)?;
    let base = i64::from_be_bytes(batch[0..8].try_into().unwrap()).max(log_start);
    if let Ok(set) = RecordBatchDecoder::decode(&mut buf) {
        if let Some(r) = set.records.iter().find(|r| r.timestamp >= timestamp && r.offset >= log_start) {
            return Ok(Some((r.offset, r.timestamp)));
        }
    }
    Ok(Some((base, timestamp)))
}

pub async fn handle<S: PartitionStore>(ctx: &Context<S>, req: ListOffsetsRequest, version: i16, caller: &Caller) -> ListOffsetsResponse {
    let authz = ctx.authz(caller);
    let mut resp = ListOffsetsResponse::default();
    let tps: Vec<TopicPartition> =
        req.topics.iter().flat_map(|t| t.partitions.iter().map(|p| TopicPartition::new(t.name.0.as_str(), p.partition_index))).collect();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(req.timeout_ms.max(0) as u64);
    super::leaders_ready(ctx, tps.iter(), deadline).await;
    for topic in req.topics {
        let mut t = ListOffsetsTopicResponse::default();
        t.name = topic.name.clone();
        for p in topic.partitions {
            let tp = TopicPartition::new(topic.name.0.as_str(), p.partition_index);
            let mut out = ListOffsetsPartitionResponse::default();
            out.partition_index = p.partition_index;
            out.timestamp = -1;
            out.offset = -1;
            out.leader_epoch = -1;
            if !authz.topic(Operation::Describe, &tp.topic) {
                out.error_code = errors::TOPIC_AUTHORIZATION_FAILED;
                t.partitions.push(out);
                continue;
            }
            let result = match p.timestamp {
                LATEST => ctx.store.offsets(&tp).map(|(_, hwm)| Some((hwm, -1))),
                EARLIEST | EARLIEST_LOCAL => ctx.store.offsets(&tp).map(|(start, _)| Some((start, -1))),
                MAX_TIMESTAMP => match ctx.store.newest_timestamp(&tp) {
                    Ok(Some(newest)) => by_timestamp(ctx, &tp, newest),
                    other => other.map(|_| None),
                },
                LATEST_TIERED | EARLIEST_PENDING_UPLOAD => ctx.store.offsets(&tp).map(|_| None),
                ts => by_timestamp(ctx, &tp, ts),
            };
            match result {
                Ok(Some((offset, ts))) => {
                    out.offset = offset;
                    out.timestamp = ts;
                    if version < 4 {
                    } else if let Some(pv) = ctx.store.cluster_view(Some(&[tp.topic.to_string()])).topics.first().and_then(|t| t.partitions.get(p.partition_index as usize).cloned()) {
                        out.leader_epoch = pv.leader_epoch;
                    }
                }
                Ok(None) => {}
                Err(e) => out.error_code = errors::code(&e),
            }
            t.partitions.push(out);
        }
        resp.topics.push(t);
    }
    resp
}
