use std::collections::BTreeMap;

use chronik::offsets::CommittedOffset;
use chronik::PartitionStore;
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions, OffsetFetchResponseTopic,
    OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{GroupId, OffsetFetchRequest, OffsetFetchResponse, TopicName};

use crate::authz::Authz;
use crate::errors;
use crate::server::{Caller, Context};
use chronik::security::acl::Operation;

/// One group's answer: the group error, and per topic per partition
/// (partition, committed offset or None, error).
type GroupOffsets = (i16, BTreeMap<String, Vec<(i32, Option<CommittedOffset>, i16)>>);

/// `wanted`: None means every committed partition of the group (of the
/// topics the principal may DESCRIBE).
fn fetch<S: PartitionStore>(ctx: &Context<S>, group: &str, wanted: Option<Vec<(String, Vec<i32>)>>, authz: &Authz) -> GroupOffsets {
    let committed = if authz.group(Operation::Describe, group) { ctx.groups.committed(group) } else { Err(errors::GROUP_AUTHORIZATION_FAILED) };
    let committed = match committed {
        Ok(c) => c,
        Err(code) => {
            // Per-partition errors too, for v1 which has no group error.
            let out = wanted
                .unwrap_or_default()
                .into_iter()
                .map(|(t, ps)| (t, ps.into_iter().map(|p| (p, None, code)).collect()))
                .collect();
            return (code, out);
        }
    };
    let mut by_tp: BTreeMap<(String, i32), CommittedOffset> = committed.into_iter().map(|(t, p, o)| ((t, p), o)).collect();
    let mut out: BTreeMap<String, Vec<(i32, Option<CommittedOffset>, i16)>> = BTreeMap::new();
    match wanted {
        None => {
            for ((t, p), o) in by_tp {
                if authz.topic(Operation::Describe, &t) {
                    out.entry(t).or_default().push((p, Some(o), errors::NONE));
            }
        }
        }
        Some(topics) => {
            for (t, ps) in topics {
                let allowed = authz.topic(Operation::Describe, &t);
                let entry = out.entry(t.clone()).or_default();
                for p in ps {
                    match allowed {
                        true => entry.push((p, by_tp.remove(&(t.clone(), p)), errors::NONE)),
                        false => entry.push((p, None, errors::TOPIC_AUTHORIZATION_FAILED)),
                    }
                }
            }
        }
    }
    (errors::NONE, out)
}

fn offset_fields(o: &Option<CommittedOffset>) -> (i64, i32, String) {
    match o {
        Some(o) => (o.offset, o.leader_epoch, o.metadata.clone()),
        None => (-1, -1, String::new()),
    }
}

pub async fn handle<S: PartitionStore>(ctx: &Context<S>, req: OffsetFetchRequest, version: i16, caller: &Caller) -> OffsetFetchResponse {
    let mut resp = OffsetFetchResponse::default();
    let authz = ctx.authz(caller);
    if version >= 8 {
        for g in req.groups {
            // v10 names topics by id: an unknown one is UNKNOWN_TOPIC_ID.
            let mut unknown: Vec<(uuid::Uuid, Vec<i32>)> = Vec::new();
            let wanted = g.topics.map(|ts| {
                ts.into_iter()
                    .filter_map(|t| match super::topic_named(ctx, &t.name, t.topic_id, version >= 10) {
                        Ok(name) => Some((name, t.partition_indexes)),
                        Err(_) => {
                            unknown.push((t.topic_id, t.partition_indexes));
                            None
                        }
                    })
                    .collect()
            });
            let (code, topics) = fetch(ctx, &g.group_id.0, wanted, &authz);
            let mut rg = OffsetFetchResponseGroup::default().with_group_id(GroupId(super::str(g.group_id.0.to_string()))).with_error_code(code);
            let by_id = unknown.into_iter().map(|(id, ps)| (String::new(), id, ps.into_iter().map(|p| (p, None, errors::UNKNOWN_TOPIC_ID)).collect()));
            let topics = topics.into_iter().map(|(name, parts)| {
                let id = if version >= 10 { super::topic_uuid(ctx, &name) } else { uuid::Uuid::nil() };
                (name, id, parts)
            });
            for (name, id, parts) in topics.chain(by_id) {
                let mut t = OffsetFetchResponseTopics::default().with_name(TopicName(super::str(name))).with_topic_id(id);
                for (p, o, err) in parts {
                    let (offset, epoch, metadata) = offset_fields(&o);
                    t.partitions.push(
                        OffsetFetchResponsePartitions::default()
                            .with_partition_index(p)
                            .with_committed_offset(offset)
                            .with_committed_leader_epoch(epoch)
                            .with_metadata(Some(super::str(metadata)))
                            .with_error_code(err),
                    );
                }
                rg.topics.push(t);
            }
            resp.groups.push(rg);
        }
        return resp;
    }
    let wanted = req.topics.map(|ts| ts.into_iter().map(|t| (t.name.0.to_string(), t.partition_indexes)).collect());
    let (code, topics) = fetch(ctx, &req.group_id.0, wanted, &authz);
    if version >= 2 {
        resp.error_code = code;
    }
    for (name, parts) in topics {
        let mut t = OffsetFetchResponseTopic::default().with_name(TopicName(super::str(name)));
        for (p, o, err) in parts {
            let (offset, epoch, metadata) = offset_fields(&o);
            let mut rp = OffsetFetchResponsePartition::default()
                .with_partition_index(p)
                .with_committed_offset(offset)
                .with_metadata(Some(super::str(metadata)))
                .with_error_code(err);
            if version >= 5 {
                rp.committed_leader_epoch = epoch;
            }
            t.partitions.push(rp);
        }
        resp.topics.push(t);
    }
    resp
}
