use chronik::{PartitionStore, TopicPartition};
use kafka_protocol::messages::describe_producers_response::{PartitionResponse, ProducerState, TopicResponse};
use kafka_protocol::messages::{DescribeProducersRequest, DescribeProducersResponse, ProducerId};

use crate::errors;
use crate::server::Context;

/// The idempotent producers each partition's leader remembers (Kafka's
/// `kafka-transactions describe-producers`). No transactions here: no
/// coordinator epoch, no open transaction.
pub fn handle<S: PartitionStore>(ctx: &Context<S>, req: DescribeProducersRequest) -> DescribeProducersResponse {
    let mut resp = DescribeProducersResponse::default();
    for topic in req.topics {
        let mut t = TopicResponse::default().with_name(topic.name.clone());
        for p in topic.partition_indexes {
            let tp = TopicPartition::new(topic.name.0.as_str(), p);
            let mut out = PartitionResponse::default().with_partition_index(p);
            match ctx.store.producers(&tp) {
                Ok(producers) => {
                    out.active_producers = producers
                        .into_iter()
                        .map(|(pid, s)| {
                            ProducerState::default()
                                .with_producer_id(ProducerId(pid))
                                .with_producer_epoch(s.epoch as i32)
                                .with_last_sequence(s.batches.back().map(|b| b.last_seq).unwrap_or(-1))
                                .with_last_timestamp(s.last_timestamp_ms)
                                .with_coordinator_epoch(-1)
                                .with_current_txn_start_offset(-1)
                        })
                        .collect();
                }
                Err(e) => {
                    out.error_code = errors::code(&e);
                    out.error_message = Some(super::str(e.to_string()));
                }
            }
            t.partitions.push(out);
        }
        resp.topics.push(t);
    }
    resp
}
