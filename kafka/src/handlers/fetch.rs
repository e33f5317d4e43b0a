use std::time::Duration;

use bytes::{Bytes, BytesMut};
use chronik::store::ReadFrom;
use chronik::{PartitionStore, TopicPartition};
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::errors;
use crate::server::{Caller, Context};
use chronik::security::acl::Operation;

/// Upper bound on a long poll, whatever the client asks.
const FETCH_WAIT_MAX: Duration = Duration::from_secs(30);

/// One requested partition while its response is being gathered.
struct Part {
    tp: TopicPartition,
    /// The response topic it belongs to.
    topic: usize,
    /// Where the next read starts: the requested offset, then the offset
    /// after the last batch gathered.
    next: i64,
    /// partition_max_bytes.
    max_bytes: usize,
    batches: Vec<Bytes>,
    bytes: usize,
    out: PartitionData,
    /// The high watermark moves (for the long poll); None when the
    /// partition is not served here.
    watch: Option<watch::Receiver<i64>>,
    /// The high watermark when this partition was last read.
    seen: i64,
    /// The leader only, or (a consumer's Fetch v11+, KIP-392) any replica.
    from: ReadFrom,
}

/// The response being gathered: every partition's batches so far, under the
/// response's byte budget (max_bytes, capped by the node's fetch_max_bytes).
/// A long poll re-reads only the partitions whose high watermark moved, and
/// only from where the last read ended: nothing is read or copied twice.
struct Gather {
    parts: Vec<Part>,
    budget: usize,
    total: usize,
    version: i16,
}

impl Gather {
    fn new<S: PartitionStore>(ctx: &Context<S>, req: &FetchRequest, version: i16, authz: &crate::authz::Authz) -> (Self, Vec<FetchableTopicResponse>) {
        let fetch_max = ctx.cfg.limits.fetch_max_bytes;
        let asked = req.max_bytes.max(0) as usize;
        if asked > fetch_max {
            ctx.limit_hit("fetch_max_bytes");
        }
        let mut topics = Vec::new();
        let mut parts = Vec::new();
        // KIP-392: a consumer that gives its rack is pointed at a replica
        // there, and may read from followers. (Kafka serves any v11+
        // consumer from a follower; a consumer without a rack is answered
        // NOT_LEADER_OR_FOLLOWER here instead, so that one with stale
        // metadata goes to the new leader at once.)
        let rack = if version >= 11 { req.rack_id.as_str() } else { "" };
        let from = if !rack.is_empty() && req.replica_id.0 < 0 { ReadFrom::AnyReplica } else { ReadFrom::Leader };
        for topic in &req.topics {
            let mut t = FetchableTopicResponse::default();
            t.topic = topic.topic.clone();
            t.topic_id = topic.topic_id;
            let named = super::topic_named(ctx, &topic.topic, topic.topic_id, version >= 13).and_then(|name| {
                if authz.topic(Operation::Read, &name) {
                    Ok(name)
                } else {
                    Err(errors::TOPIC_AUTHORIZATION_FAILED)
                }
            });
            for p in &topic.partitions {
                let tp = TopicPartition::new(named.as_deref().unwrap_or_default(), p.partition);
                let mut out = PartitionData::default();
                out.partition_index = p.partition;
                out.high_watermark = -1;
                out.last_stable_offset = -1;
                out.log_start_offset = -1;
                out.preferred_read_replica = (-1).into();
                out.aborted_transactions = Some(vec![]);
                if let Err(code) = named {
                    out.error_code = code;
                    parts.push(Part { tp, topic: topics.len(), next: p.fetch_offset, max_bytes: 0, batches: vec![], bytes: 0, out, watch: None, seen: -1, from });
                    continue;
                }
                let mut max_bytes = p.partition_max_bytes.max(0) as usize;
                if let Some(n) = (!rack.is_empty()).then(|| ctx.store.preferred_read_replica(&tp, rack)).flatten() {
                    // Only the serving leader redirects; it answers offsets, no records.
                    if let Ok((start, hwm)) = ctx.store.offsets(&tp) {
                        out.preferred_read_replica = (n as i32).into();
                        set_offsets(&mut out, version, start, hwm);
                        max_bytes = 0;
                    }
                }
                let watch = if max_bytes == 0 { None } else { ctx.store.watch_high_watermark(&tp).ok() };
                parts.push(Part { tp, topic: topics.len(), next: p.fetch_offset, max_bytes, batches: vec![], bytes: 0, out, watch, seen: -1, from });
            }
            topics.push(t);
        }
        (Self { parts, budget: asked.min(fetch_max), total: 0, version }, topics)
    }

    /// Reads what partition `i` has from where its last read ended.
    fn read<S: PartitionStore>(&mut self, ctx: &Context<S>, i: usize) {
        let version = self.version;
        let p = &mut self.parts[i];
        if p.out.error_code != 0 || p.out.preferred_read_replica.0 >= 0 {
            return;
        }
        let mut limit = p.max_bytes.saturating_sub(p.bytes).min(self.budget);
        // The first batch of a response is always whole, even if larger (KIP-74).
        if self.total == 0 {
            limit = limit.max(1);
        }
        // With the budget spent (limit 0): offsets only.
        match ctx.store.read(&p.tp, p.next, limit, p.from) {
            Ok(r) => {
                set_offsets(&mut p.out, version, r.log_start_offset, r.high_watermark);
                let size: usize = r.batches.iter().map(|b| b.len()).sum();
                // Once something is in the response, a partition gets only what fits.
                if size == 0 || (self.total > 0 && size > self.budget) {
                    return;
                }
                if let Some(next) = r.batches.last().and_then(|b| chronik::log::batch::next_offset(b)) {
                    p.next = next;
                }
                p.batches.extend(r.batches);
                p.bytes += size;
                self.total += size;
                self.budget = self.budget.saturating_sub(size);
            }
            Err(e) => p.out.error_code = errors::code(&e),
        }
    }

    /// Whether partition `i`'s high watermark moved since it was last read.
    fn moved(&mut self, i: usize) -> bool {
        let p = &mut self.parts[i];
        let Some(w) = p.watch.as_mut() else { return false;
        };
        let now = *w.borrow_and_update();
        std::mem::replace(&mut p.seen, now) != now
    }

    fn has_error(&self) -> bool {
        self.parts.iter().any(|p| p.out.error_code != 0)
    }

    fn finish(self, mut topics: Vec<FetchableTopicResponse>) -> FetchResponse {
        for mut p in self.parts {
            p.out.records = Some(match p.batches.len() {
                0 => Bytes::new(),
                1 => p.batches.pop().expect("one batch"),
                _ => {
                    let mut buf = BytesMut::with_capacity(p.bytes);
                    p.batches.iter().for_each(|b| buf.extend_from_slice(b));
                    buf.freeze()
                }
            });
            topics[p.topic].partitions.push(p.out);
        }
        let mut resp = FetchResponse::default();
        resp.responses = topics;
        resp
    }
}

fn set_offsets(out: &mut PartitionData, version: i16, log_start: i64, hwm: i64) {
    out.high_watermark = hwm;
    out.last_stable_offset = hwm;
    if version >= 5 {
        out.log_start_offset = log_start;
    }
}

/// Long poll: answer as soon as min_bytes are available, an error occurs, or
/// max_wait_ms passes; in between, sleep until a high watermark moves, and
/// then read just the partitions that moved.
pub async fn handle<S: PartitionStore>(ctx: &Context<S>, req: FetchRequest, version: i16, caller: &Caller) -> FetchResponse {
    let deadline = Instant::now() + Duration::from_millis(req.max_wait_ms.max(0) as u64).min(FETCH_WAIT_MAX);
    let min_bytes = req.min_bytes.max(1) as usize;
    let (mut g, topics) = Gather::new(ctx, &req, version, &ctx.authz(caller));
    drop(req);
    super::leaders_ready(ctx, g.parts.iter().map(|p| &p.tp), deadline).await;
    for i in 0..g.parts.len() {
        g.moved(i);
        g.read(ctx, i);
    }
    loop {
        let watching = g.parts.iter().any(|p| p.watch.is_some());
        if g.total >= min_bytes || g.has_error() || g.budget == 0 || Instant::now() >= deadline || !watching {
            break;
        }
        let changed = futures::future::select_all(g.parts.iter_mut().filter_map(|p| p.watch.as_mut()).map(|w| Box::pin(w.changed())));
        match tokio::time::timeout_at(deadline, changed).await {
            Err(_) => break,
            Ok((Err(_), _, _)) => {
                // A partition stopped (deleted, moved): answer with what we have.
                break;
            }
            Ok(_) => {}
        }
        for i in 0..g.parts.len() {
            if g.moved(i) {
                g.read(ctx, i);
            }
        }
    }
    ctx.metrics.kafka_bytes_out.get_or_create(&ctx.metrics.node()).inc_by(g.total as u64);
    g.finish(topics)
}
