//! DescribeLogDirs (API 35): `kafka-log-dirs.sh`, and what
//! `kafka-reassign-partitions.sh` asks of each node. A node has one log
//! directory (its data directory, one sled database); it lists the
//! partition replicas it holds there, each with its retained bytes.

use std::collections::BTreeMap;

use chronik::PartitionStore;
use kafka_protocol::messages::describe_log_dirs_response::{DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};

use crate::server::{Caller, Context};
use chronik::security::acl::Operation;

pub fn handle<S: PartitionStore>(ctx: &Context<S>, req: DescribeLogDirsRequest, version: i16, caller: &Caller) -> DescribeLogDirsResponse {
    if !ctx.authz(caller).cluster(Operation::Describe) {
        return DescribeLogDirsResponse::default().with_error_code(crate::errors::CLUSTER_AUTHORIZATION_FAILED);
    }
    let asked = |topic: &str, partition: i32| match &req.topics {
        None => true,
        Some(ts) => ts.iter().any(|t| *t.topic.0 == *topic && t.partitions.contains(&partition)),
    };
    let mut topics: BTreeMap<String, Vec<DescribeLogDirsPartition>> = BTreeMap::new();
    for r in ctx.store.replicas().into_iter().filter(|r| asked(&r.topic, r.partition)) {
        let mut p = DescribeLogDirsPartition::default();
        p.partition_index = r.partition;
        p.partition_size = i64::try_from(r.retained_bytes).unwrap_or(i64::MAX);
        topics.entry(r.topic).or_default().push(p);
    }
    let mut dir = DescribeLogDirsResult::default();
    let log_dir = ctx.cfg.broker_configs.iter().find(|c| c.name == "log.dirs").map(|c| c.value.clone()).unwrap_or_default();
    dir.log_dir = super::str(log_dir);
    for (name, partitions) in topics {
        let mut t = DescribeLogDirsTopic::default();
        t.name = TopicName(super::str(name));
        t.partitions = partitions;
        dir.topics.push(t);
    }
    if version >= 4 {
        dir.total_bytes = -1;
        dir.usable_bytes = ctx.store.disk_free_bytes().map_or(-1, |b| i64::try_from(b).unwrap_or(i64::MAX));
    }
    let mut resp = DescribeLogDirsResponse::default();
    resp.results.push(dir);
    resp
}
