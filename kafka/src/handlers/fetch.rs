use std::time::Duration;

use bytes::{Bytes, BytesMut};
use chronik::{PartitionStore, TopicPartition};
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse};
use tokio::time::Instant;

use crate::errors;
use crate::server::Context;

/// Upper bound on a long poll, whatever the client asks.
const FETCH_WAIT_MAX: Duration = Duration::from_secs(30);

/// Reads every requested partition once, honouring partition_max_bytes and the
/// response's max_bytes (the first batch of the response is always whole,
/// even if larger, as KIP-74 says). Returns the response and its record bytes.
fn read_all<S: PartitionStore>(ctx: &Context<S>, req: &FetchRequest, version: i16) -> (FetchResponse, usize) {
    let mut resp = FetchResponse::default();
    let mut budget = req.max_bytes.max(0) as usize;
    let mut total = 0usize;
    for topic in &req.topics {
        let mut t = FetchableTopicResponse::default();
        t.topic = topic.topic.clone();
        t.topic_id = topic.topic_id;
        for p in &topic.partitions {
            let tp = TopicPartition::new(topic.topic.0.as_str(), p.partition);
            let mut out = PartitionData::default();
            out.partition_index = p.partition;
            out.high_watermark = -1;
            out.last_stable_offset = -1;
            out.log_start_offset = -1;
            out.preferred_read_replica = (-1).into();
            out.aborted_transactions = Some(vec![]);
            let limit = (p.partition_max_bytes.max(0) as usize).min(budget);
            // Once something is in the response, a partition gets only what fits.
            let limit = if total == 0 { limit.max(1) } else { limit };
            if limit == 0 {
                // Budget spent: report offsets only.
                match ctx.store.offsets(&tp) {
                    Ok((start, hwm)) => {
                        out.high_watermark = hwm;
                        out.last_stable_offset = hwm;
                        if version >= 5 {
                            out.log_start_offset = start;
                        }
                    }
                    Err(e) => out.error_code = errors::code(&e),
                }
                t.partitions.push(out);
                continue;
            }
            match ctx.store.read(&tp, p.fetch_offset, limit) {
                Ok(r) => {
                    out.high_watermark = r.high_watermark;
                    out.last_stable_offset = r.high_watermark;
                    if version >= 5 {
                        out.log_start_offset = r.log_start_offset;
                    }
                    let size: usize = r.batches.iter().map(|b| b.len()).sum();
                    if size > 0 && (total == 0 || size <= budget) {
                        let mut buf = BytesMut::with_capacity(size);
                        for b in &r.batches {
                            buf.extend_from_slice(b);
                        }
                        out.records = Some(buf.freeze());
                        total += size;
                        budget = budget.saturating_sub(size);
                    } else {
                        out.records = Some(Bytes::new());
                    }
                }
                Err(e) => out.error_code = errors::code(&e),
            }
            t.partitions.push(out);
        }
        resp.responses.push(t);
    }
    (resp, total)
}

/// Long poll: answer as soon as min_bytes are available, an error occurs, or
/// max_wait_ms passes; in between, sleep until a high watermark moves.
pub async fn handle<S: PartitionStore>(ctx: &Context<S>, req: FetchRequest, version: i16) -> FetchResponse {
    let deadline = Instant::now() + Duration::from_millis(req.max_wait_ms.max(0) as u64).min(FETCH_WAIT_MAX);
    let mut watches: Vec<_> = req
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(move |p| TopicPartition::new(t.topic.0.as_str(), p.partition)))
        .filter_map(|tp| ctx.store.watch_high_watermark(&tp).ok())
        .collect();
    for w in &mut watches {
        w.borrow_and_update();
    }
    loop {
        let (resp, total) = read_all(ctx, &req, version);
        let has_error = resp.responses.iter().any(|t| t.partitions.iter().any(|p| p.error_code != 0));
        if total >= req.min_bytes.max(1) as usize || has_error || Instant::now() >= deadline || watches.is_empty() {
            ctx.metrics.kafka_bytes_out.get_or_create(&ctx.metrics.node()).inc_by(total as u64);
            return resp;
        }
        let changed = futures::future::select_all(watches.iter_mut().map(|w| Box::pin(w.changed())));
        if tokio::time::timeout_at(deadline, changed).await.is_err() {
            continue; // deadline: one last read above returns
        }
    }
}
