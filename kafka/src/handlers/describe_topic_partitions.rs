//! DescribeTopicPartitions (KIP-966): Metadata's topic answer, paged by
//! partitions, which Kafka 4's admin client (`kafka-topics --describe`)
//! uses. Topics in name order, partitions in index order; a response holds
//! at most `response_partition_limit` partitions (capped by
//! [`PARTITIONS_MAX`]) and a cursor to the next one.

use chronik::store::TopicView;
use chronik::PartitionStore;
use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic
};
use kafka_protocol::messages::{BrokerId, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, TopicName};

use crate::errors;
use crate::server::{Caller, Context};
use chronik::security::acl::Operation;

/// Most partitions one response describes (Kafka's
/// max.request.partition.size.limit default).
pub const PARTITIONS_MAX: usize = 2000;

/// Part of one topic in a page: (topic index, first partition, partitions).
type Run = (usize, usize, usize);

/// The page's runs, in order, then the cursor to the next page. `topics`
/// are in name order; `cursor` is (topic name, partition) to start from.
fn page(topics: &[(String, usize)], cursor: Option<(&str, i32)>, limit: usize) -> (Vec<Run>, Option<(String, i32)>) {
    let mut out = Vec::new();
    let mut left = limit.max(1);
    for (i, (name, count)) in topics.iter().enumerate() {
        let first = match cursor {
            Some((t, _)) if name.as_str() < t => continue,
            Some((t, p)) if name == t => p.max(0) as usize,
            _ => 0,
        };
        if first >= *count {
            continue;
        }
        if left == 0 {
            return (out, Some((name.clone(), first as i32)));
        }
        let n = count.saturating_sub(first).min(left);
        out.push((i, first, n));
        left -= n;
        if first + n < *count {
            return (out, Some((name.clone(), (first + n) as i32)));
        }
    }
    (out, None)
}

fn broker_ids(nodes: &[u64]) -> Vec<BrokerId> {
    nodes.iter().map(|n| BrokerId(*n as i32)).collect()
}

/// Topics the principal may not DESCRIBE: left out of a listing of all,
/// TOPIC_AUTHORIZATION_FAILED when named (whether they exist or not).
pub fn handle<S: PartitionStore>(ctx: &Context<S>, req: DescribeTopicPartitionsRequest, caller: &Caller) -> DescribeTopicPartitionsResponse {
    let authz = ctx.authz(caller);
    let mut names: Vec<String> = req.topics.iter().map(|t| t.name.0.to_string()).collect();
    names.sort();
    names.dedup();
    let view = ctx.store.cluster_view(if names.is_empty() { None } else { Some(&names) });
    let mut topics: Vec<&TopicView> = view.topics.iter().filter(|t| authz.topic(Operation::Describe, &t.name)).collect();
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    let mut resp = DescribeTopicPartitionsResponse::default();
    // Topics asked for that do not exist come first, once, without paging.
    if req.cursor.is_none() {
        for name in names.iter().filter(|n| !topics.iter().any(|t| &t.name == *n)) {
            let exists_for_caller = authz.topic(Operation::Describe, name);
            resp.topics.push(
                DescribeTopicPartitionsResponseTopic::default()
                    .with_name(Some(TopicName(super::str(name.clone()))))
                    .with_error_code(if exists_for_caller { errors::UNKNOWN_TOPIC_OR_PARTITION } else { errors::TOPIC_AUTHORIZATION_FAILED })
                    .with_topic_authorized_operations(i32::MIN),
            );
        }
    }
    let sizes: Vec<(String, usize)> = topics.iter().map(|t| (t.name.clone(), t.partitions.len())).collect();
    let limit = (req.response_partition_limit.max(1) as usize).min(PARTITIONS_MAX);
    let cursor = req.cursor.as_ref().map(|c| (c.topic_name.0.as_str(), c.partition_index));
    let (pages, next) = page(&sizes, cursor, limit);
    let alive = |n: &u64| view.nodes.iter().any(|v| v.id == *n && v.alive);
    for (i, first, n) in pages {
        let t = topics[i];
        let partitions = t.partitions[first..first + n]
            .iter()
            .map(|p| {
                let offline: Vec<u64> = p.replicas.iter().copied().filter(|r| !alive(r)).collect();
                DescribeTopicPartitionsResponsePartition::default()
                    .with_partition_index(p.partition)
                    .with_leader_id(BrokerId(p.leader.map(|l| l as i32).unwrap_or(-1)))
                    .with_leader_epoch(p.leader_epoch)
                    .with_replica_nodes(broker_ids(&p.replicas))
                    .with_isr_nodes(broker_ids(&p.isr))
                    .with_eligible_leader_replicas(Some(vec![]))
                    .with_last_known_elr(Some(vec![]))
                    .with_offline_replicas(broker_ids(&offline))
            })
            .collect();
        resp.topics.push(
            DescribeTopicPartitionsResponseTopic::default()
                .with_name(Some(TopicName(super::str(t.name.clone()))))
                .with_topic_id(uuid::Uuid::from_u128(t.id))
                .with_is_internal(t.internal)
                .with_partitions(partitions)
                .with_topic_authorized_operations(i32::MIN),
        );
    }
    resp.next_cursor = next.map(|(t, p)| Cursor::default().with_topic_name(TopicName(super::str(t))).with_partition_index(p));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topics(sizes: &[(&str, usize)]) -> Vec<(String, usize)> {
        sizes.iter().map(|(n, c)| (n.to_string(), *c)).collect()
    }

    #[test]
    fn everything_fits_in_one_page() {
        let t = topics(&[("a", 2), ("b", 3)]);
        assert_eq!(page(&t, None, 10), (vec![(0, 0, 2), (1, 0, 3)], None));
    }

    #[test]
    fn pages_split_topics_and_resume_at_the_cursor() {
        let t = topics(&[("a", 2), ("b", 3), ("c", 1)]);
        let (p1, c1) = page(&t, None, 3);
        assert_eq!((p1, c1.clone()), (vec![(0, 0, 2), (1, 0, 1)], Some(("b".to_string(), 1))));
        let c1 = c1.unwrap();
        let (p2, c2) = page(&t, Some((&c1.0, c1.1)), 2);
        assert_eq!((p2, c2.clone()), (vec![(1, 1, 2)], Some(("c".to_string(), 0))));
        let c2 = c2.unwrap();
        assert_eq!(page(&t, Some((&c2.0, c2.1)), 2), (vec![(2, 0, 1)], None));
    }

    #[test]
    fn a_page_ending_on_a_topic_boundary_points_at_the_next_topic() {
        let t = topics(&[("a", 2), ("b", 1)]);
        assert_eq!(page(&t, None, 2), (vec![(0, 0, 2)], Some(("b".to_string(), 0))));
    }

    #[test]
    fn a_cursor_past_everything_gives_nothing() {
        let t = topics(&[("a", 2)]);
        assert_eq!(page(&t, Some(("z", 0)), 5), (vec![], None));
        assert_eq!(page(&t, Some(("a", 7)), 5), (vec![], None));
    }
}
