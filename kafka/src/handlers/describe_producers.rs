use chronik::{PartitionStore, TopicPartition};
use kafka_protocol::messages::describe_producers_response::{PartitionResponse, ProducerState, TopicResponse};
use kafka_protocol::messages::{DescribeProducersRequest, DescribeProducersResponse, ProducerId};

use crate::errors;
use crate::server::{Caller, Context};
use chronik::security::acl::Operation;

/// The idempotent producers each partition's leader remembers (Kafka's
/// `kafka-transactions describe-producers`). No transactions here: no
/// coordinator epoch, no open transaction.
pub fn handle<S: PartitionStore>(ctx: &Context<S>, req: DescribeProducersRequest, caller: &Caller) -> DescribeProducersResponse {
    let mut resp = DescribeProducersResponse::default();
    let authz = ctx.authz(caller);
    for topic in req.topics {
        let mut t = TopicResponse::default().with_name(topic.name.clone());
        for p in topic.partition_indexes {
            let tp = TopicPartition::new(topic.name.0.as_str(), p);
            let mut out = PartitionResponse::default().with_partition_index(p);
            let producers = match authz.topic(Operation::Read, &tp.topic) {
                true => ctx.store.producers(&tp).map_err(|e| (errors::code(&e), e.to_string())),
                false => Err((errors::TOPIC_AUTHORIZATION_FAILED, "Topic authorization failed.".to_string())),
            };
            match producers {
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
                Err((code, message)) => {
                    out.error_code = code;
                    out.error_message = Some(super::str(message));
                }
            }
            t.partitions.push(out);
        }
        resp.topics.push(t);
    }
    resp
}
