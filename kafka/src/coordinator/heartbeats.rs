//! KIP-848 at the coordinator: ConsumerGroupHeartbeat and
//! ConsumerGroupDescribe over the pure [`ConsumerGroup`], and what the
//! classic paths (JoinGroup, OffsetCommit, ListGroups, DeleteGroups) must
//! know of consumer groups.
//!
//! A group speaks one protocol at a time: a classic group with members
//! refuses consumer-protocol members (GROUP_ID_NOT_FOUND, as Kafka does
//! with online migration off) and a consumer group with members refuses
//! JoinGroup (INCONSISTENT_GROUP_PROTOCOL). An empty group changes protocol
//! freely; its committed offsets are the same either way.
//!
//! Consumer groups live in the coordinator's memory, under the offsets
//! partition's term: when the coordinator moves, members heartbeat the new
//! one, get UNKNOWN_MEMBER_ID and join again (their committed offsets are
//! replicated, as every commit is).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Instant;

use chronik::PartitionStore;
use tokio::sync::{Mutex, OwnedMutexGuard};
use tracing::info;

use super::consumer::{Beat, ConsumerGroup, GroupState, Reply, LEAVE, LEAVE_STATIC};
use super::Coordinator;
use crate::errors::*;

/// One consumer group and the offsets-partition term it belongs to.
#[derive(Default)]
pub(super) struct Slot {
    term: u64,
    pub(super) group: ConsumerGroup,
}

pub(super) type ConsumerGroups = StdMutex<HashMap<String, Arc<Mutex<Slot>>>>;

type Refusal = (i16, String);

impl<S: PartitionStore> Coordinator<S> {
    /// Consumer group `name`, locked; emptied if the coordinator moved
    /// since it was last used here.
    async fn slot(&self, name: &str) -> Result<OwnedMutexGuard<Slot>, i16> {
        let term = self.check(name)?;
        let handle = self.consumer_groups.lock().unwrap().entry(name.to_string()).or_default().clone();
        let mut slot = handle.lock_owned().await;
        if slot.term != term {
            if !slot.group.members.is_empty() {
                info!(group = %name, term, "coordinating this consumer group anew; its members join again");
            }
            *slot = Slot { term, group: ConsumerGroup::default() };
        }
        Ok(slot)
    }

    /// The members of consumer group `name` here (0: none, or not a
    /// consumer group).
    pub(super) async fn consumer_members(&self, name: &str) -> usize {
        let Some(handle) = self.consumer_groups.lock().unwrap().get(name).cloned() else { return 0 };
        let slot = handle.lock().await;
        if self.check(name).is_ok_and(|t| t == slot.term) {
            slot.group.members.len()
        } else {
            0
        }
    }

    pub async fn consumer_heartbeat(&self, group: &str, beat: Beat) -> Result<Reply, Refusal> {
        if group.is_empty() {
            return Err((INVALID_GROUP_ID, "the group id is empty".into()));
        }
        if beat.epoch != LEAVE && beat.epoch != LEAVE_STATIC {
            let classic = self.group(group).await.map_err(|c| (c, format!("group {group} is not coordinated here")))?;
            if !classic.members.is_empty() {
                return Err((GROUP_ID_NOT_FOUND, format!("group {group} is a classic group with members; its consumers must leave before it takes the consumer protocol")));
            }
        }
        let mut slot = self.slot(group).await.map_err(|c| (c, format!("group {group} is not coordinated here")))?;
        let (member, epoch) = (beat.member_id.clone(), beat.epoch);
        let store = self.store.clone();
        let reply = slot.group.heartbeat(
            beat,
            || chronik::cluster::metadata::uuid_text(uuid::Uuid::new_v4().as_u128()),
            |g| partition_counts(&*store, g),
            self.settings.consumer_max_size,
            Instant::now(),
        )?;
        match epoch {
            0 => info!(group = %group, member = %reply.member_id, group_epoch = slot.group.epoch, "consumer joined (consumer protocol)"),
            LEAVE | LEAVE_STATIC => info!(group = %group, member = %member, group_epoch = slot.group.epoch, "consumer left (consumer protocol)"),
            _ => {}
        }
        Ok(reply)
    }

    /// Consumer group `name` as it is now (GROUP_ID_NOT_FOUND if it has no
    /// members here: an empty group is described as a classic one).
    pub async fn consumer_describe(&self, name: &str) -> Result<ConsumerGroup, Refusal> {
        let slot = self.slot(name).await.map_err(|c| (c, format!("group {name} is not coordinated here")))?;
        if slot.group.members.is_empty() {
            return Err((GROUP_ID_NOT_FOUND, format!("group {name} is not a consumer group with members")));
        }
        Ok(slot.group.clone())
    }

    /// Whether a commit of `member_id` at `epoch` is for a consumer group
    /// here: None if `group` is not one, else its verdict.
    pub(super) async fn consumer_commit(&self, group: &str, member_id: &str, epoch: i32) -> Option<Result<(), i16>> {
        let handle = self.consumer_groups.lock().unwrap().get(group).cloned()?;
        let slot = handle.lock().await;
        if slot.group.members.is_empty() || self.check(group).ok() != Some(slot.term) {
            return None;
        }
        Some(slot.group.check_commit(member_id, epoch))
    }

    /// The consumer groups with members here: (name, state).
    pub async fn consumer_list(&self) -> Vec<(String, GroupState)> {
        let handles: Vec<(String, Arc<Mutex<Slot>>)> = self.consumer_groups.lock().unwrap().iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let mut out = Vec::new();
        for (name, handle) in handles {
            let slot = handle.lock().await;
            if !slot.group.members.is_empty() && self.check(&name).ok() == Some(slot.term) {
                out.push((name, slot.group.state()));
            }
        }
        out
    }

    /// Expires silent members and members stuck revoking; drops groups
    /// without members, or no longer coordinated here, from memory.
    pub(super) fn tick_consumer_groups(&self) {
        let now = Instant::now();
        let session = self.settings.consumer_session_timeout;
        let mut groups = self.consumer_groups.lock().unwrap();
        groups.retain(|name, handle| {
            // A group busy with a request is looked at next tick.
            let Ok(mut slot) = handle.try_lock() else { return true };
            for id in slot.group.expire(session, now) {
                info!(group = %name, member = %id, "consumer session expired or revocation timed out; removed (consumer protocol)");
            }
            !slot.group.members.is_empty() && self.check(name).ok() == Some(slot.term)
        });
    }
}

/// Partition counts of the topics group `g` subscribes to, by name or regex
/// (internal topics too, as Kafka's broker resolves a regex).
fn partition_counts<S: PartitionStore>(store: &S, g: &ConsumerGroup) -> BTreeMap<String, i32> {
    let names: Vec<String> = g.subscribed().into_iter().collect();
    let regexes = g.regexes();
    let view = if regexes.is_empty() { store.cluster_view(Some(&names)) } else { store.cluster_view(None) };
    view.topics
        .iter()
        .filter(|t| names.contains(&t.name) || regexes.iter().any(|re| re.is_match(&t.name)))
        .map(|t| (t.name.clone(), t.partitions.len() as i32))
        .collect()
}
