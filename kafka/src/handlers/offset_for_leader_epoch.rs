use chronik::{PartitionStore, TopicPartition};
use kafka_protocol::messages::offset_for_leader_epoch_response::{EpochEndOffset, OffsetForLeaderTopicResult};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

use crate::errors;
use crate::server::{Caller, Context};
use chronik::security::acl::Operation;

/// Where the requested epoch's data ends on the leader, so a consumer can
/// tell whether its position survived a leader change (KIP-320). An epoch
/// older than any data gets -1/-1, as Kafka answers.
pub async fn handle<S: PartitionStore>(ctx: &Context<S>, req: OffsetForLeaderEpochRequest, caller: &Caller) -> OffsetForLeaderEpochResponse {
    let authz = ctx.authz(caller);
    let mut resp = OffsetForLeaderEpochResponse::default();
    let tps: Vec<TopicPartition> = req.topics.iter().flat_map(|t| t.partitions.iter().map(|p| TopicPartition::new(t.topic.0.as_str(), p.partition))).collect();
    super::leaders_ready(ctx, tps.iter(), tokio::time::Instant::now()).await;
    for t in req.topics {
        let mut rt = OffsetForLeaderTopicResult::default().with_topic(t.topic.clone());
        for p in t.partitions {
            let tp = TopicPartition::new(t.topic.0.as_str(), p.partition);
            let mut e = EpochEndOffset::default().with_partition(p.partition).with_leader_epoch(-1).with_end_offset(-1);
            if !authz.topic(Operation::Describe, &tp.topic) {
                e.error_code = errors::TOPIC_AUTHORIZATION_FAILED;
                rt.partitions.push(e);
                continue;
            }
            match ctx.store.epoch_end_offset(&tp, p.leader_epoch) {
                Ok(Some((epoch, end))) => {
                    e.leader_epoch = epoch;
                    e.end_offset = end;
                }
                Ok(None) => {}
                Err(err) => e.error_code = errors::code(&err),
            }
            rt.partitions.push(e);
        }
        resp.topics.push(rt);
    }
    resp
}
