//! The Raft log purge of every replica on this node.
//!
//! Each replica closes segments of its own log by its topic's
//! `segment.bytes`/`segment.ms` and checkpoints its state there (see the
//! storage crate's `snapshots`). Every `SEGMENT_CHECK` this loop hands each
//! replica its topic's rule and, where a checkpoint now lies wholly below
//! the log start, asks openraft for a snapshot: it takes that checkpoint and
//! purges the log up to it, freeing the records retention let go. Leaders
//! and followers alike: a replica's log and snapshot are its own.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tracing::warn;

use crate::raft::engine::{StorageEngine, Transport};
use crate::raft::groups::GroupManager;
use crate::log::retention::SegmentRule;
use crate::cluster::metadata::ClusterMetadata;
use crate::offsets::OFFSETS_TOPIC;
use crate::TopicPartition;

/// How often every replica's segment rule and snapshot are looked at.
const SEGMENT_CHECK: Duration = Duration::from_secs(2);

impl<E: StorageEngine, T: Transport> GroupManager<E, T> {
    pub(crate) async fn segment_loop(self: Arc<Self>) {
        let mut tick = tokio::time::interval(SEGMENT_CHECK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut rules_of: Option<Arc<ClusterMetadata>> = None;
        let mut partitions_seen = 0;
        while !self.stopping.load(Ordering::Relaxed) {
            tick.tick().await;
            // Rules change only with the metadata or the replicas here.
            let md = self.metadata();
            let version = self.partitions_version.load(Ordering::Relaxed);
            let refresh = !rules_of.as_ref().is_some_and(|m| Arc::ptr_eq(m, &md)) || version != partitions_seen;
            self.check_segments(refresh).await;
            (rules_of, partitions_seen) = (Some(md), version);
        }
    }

    /// The segment rule of `tp`'s topic (None: a topic no longer known).
    pub(crate) fn segment_rule_of(&self, tp: &TopicPartition, md: &ClusterMetadata) -> Option<SegmentRule> {
        let defaults = &self.cfg.retention;
        if &*tp.topic == OFFSETS_TOPIC {
            return Some(SegmentRule { bytes: defaults.offsets_segment_bytes, ms: defaults.segment_ms });
        }
        md.effective_configs(&tp.topic, self.node_id()).map(|configs| SegmentRule::of_topic(&configs, defaults))
    }

    /// One look at every replica here; `refresh_rules` hands each its
    /// topic's segment rule again.
    pub async fn check_segments(&self, refresh_rules: bool) {
        let md = self.metadata();
        for pg in self.partition_groups() {
            if refresh_rules {
                let Some(rule) = self.segment_rule_of(&pg.tp, &md) else { continue };
                pg.log.set_segment_rule(rule);
            }
            if pg.log.snapshot_due() {
                match pg.raft.trigger().snapshot().await {
                    Ok(()) => self.metrics.log_snapshot(),
                    Err(e) => warn!(node_id = self.node_id(), partition = %pg.tp, error = %e, "could not ask for a snapshot to purge the Raft log"),
                }
            }
        }
    }
}
