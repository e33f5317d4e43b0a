//! DescribeQuorum (KIP-595/853), for `kafka-metadata-quorum`: Chronik's
//! metadata quorum is its controller Raft group, shown as Kafka shows
//! `__cluster_metadata` partition 0. Offsets are Raft log indexes. Any node
//! answers from what it sees: the leader knows every replica's progress,
//! another node only its own (the others' are -1).

use chronik::store::{QuorumReplica, QuorumView};
use chronik::PartitionStore;
use kafka_protocol::messages::describe_quorum_response::{Listener, Node, PartitionData, ReplicaState, TopicData};
use kafka_protocol::messages::{BrokerId, DescribeQuorumRequest, DescribeQuorumResponse};

use crate::errors;
use crate::server::{Caller, Context};
use chronik::security::acl::Operation;

/// The topic Kafka's tools ask about.
pub const METADATA_TOPIC: &str = "__cluster_metadata";

fn replica_state(r: &QuorumReplica, q: &QuorumView) -> ReplicaState {
    let log_end = r.log_end.map_or(-1, |e| e as i64);
    let caught_up = r.log_end.is_some_and(|e| e >= q.high_watermark);
    ReplicaState::default()
        .with_replica_id(BrokerId(r.node as i32))
        .with_log_end_offset(log_end)
        .with_last_fetch_timestamp(r.last_ack_ms.unwrap_or(-1))
        .with_last_caught_up_timestamp(if caught_up { r.last_ack_ms.unwrap_or(-1) } else { -1 })
}

pub fn handle<S: PartitionStore>(ctx: &Context<S>, req: DescribeQuorumRequest, version: i16, caller: &Caller) -> DescribeQuorumResponse {
    if !ctx.authz(caller).cluster(Operation::Describe) {
        return DescribeQuorumResponse::default().with_error_code(crate::errors::CLUSTER_AUTHORIZATION_FAILED);
    }
    let q = ctx.store.controller_quorum();
    let mut resp = DescribeQuorumResponse::default();
    for topic in req.topics {
        let mut t = TopicData::default().with_topic_name(topic.topic_name.clone());
        for p in topic.partitions {
            let mut out = PartitionData::default().with_partition_index(p.partition_index).with_leader_id(BrokerId(-1)).with_leader_epoch(-1).with_high_watermark(-1);
            let (code, message) = if topic.topic_name.0.as_str() != METADATA_TOPIC || p.partition_index != 0 {
                (errors::UNKNOWN_TOPIC_OR_PARTITION, format!("the metadata quorum is {METADATA_TOPIC}-0"))
            } else if let Some(leader) = q.leader {
                out.leader_id = BrokerId(leader as i32);
                out.leader_epoch = i32::try_from(q.term).unwrap_or(i32::MAX);
                out.high_watermark = q.high_watermark as i64;
                out.current_voters = q.voters.iter().map(|r| replica_state(r, &q)).collect();
                out.observers = q.observers.iter().map(|r| replica_state(r, &q)).collect();
                (errors::NONE, String::new())
            } else {
                (errors::NOT_LEADER_OR_FOLLOWER, "the controller group has no leader (an election is under way)".to_string())
            };
            out.error_code = code;
            if version >= 2 && code != errors::NONE {
                out.error_message = Some(super::str(message));
            }
            t.partitions.push(out);
        }
        resp.topics.push(t);
    }
    if version >= 2 {
        // Each voter's endpoint: its Raft (cluster) address.
        resp.nodes = q
            .voters
            .iter()
            .filter_map(|r| {
                let addr = ctx.store.cluster_addr(r.node)?;
                let (host, port) = addr.rsplit_once(':')?;
                let listener = Listener::default().with_name(super::str("CONTROLLER")).with_host(super::str(host)).with_port(port.parse().ok()?);
                Some(Node::default().with_node_id(BrokerId(r.node as i32)).with_listeners(vec![listener]))
            })
            .collect();
    }
    resp
}
