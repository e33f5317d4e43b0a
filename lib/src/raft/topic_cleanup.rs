//! What a deleted topic leaves behind: every group's committed offsets of
//! it, which a topic re-created under the same name must not inherit (its
//! consumers would skip records).
//!
//! Each node forgets them in the offsets partitions it leads, by
//! `GroupCommand::ForgetTopic` through the partition's Raft group: at once
//! when its metadata shows a topic gone (or re-created: a new topic id), and
//! every `log_retention_check_interval_ms` for topics no longer known at all
//! (deleted while another node led the partition).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use crate::raft::engine::{StorageEngine, Transport};
use crate::raft::groups::GroupManager;
use crate::offsets::{GroupCommand, OFFSETS_TOPIC};
use crate::Command;

impl<E: StorageEngine, T: Transport> GroupManager<E, T> {
    pub(crate) async fn topic_cleanup_loop(self: Arc<Self>) {
        let mut md = self.metadata.clone();
        let mut known: HashMap<String, u128> = self.metadata().topics.iter().map(|(n, t)| (n.clone(), t.id)).collect();
        let mut sweep = tokio::time::interval(Duration::from_millis(self.cfg.retention.check_interval_ms));
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !self.stopping.load(Ordering::Relaxed) {
            tokio::select! {
                r = md.changed() => {
                    if r.is_err() {
                        return;
                    }
                    let now = self.metadata();
                    let gone: Vec<String> = known.iter().filter(|(n, id)| now.topics.get(*n).map(|t| t.id) != Some(**id)).map(|(n, _)| n.clone()).collect();
                    known = now.topics.iter().map(|(n, t)| (n.clone(), t.id)).collect();
                    for topic in gone {
                        self.forget_topic(&topic, None).await;
                    }
                }
                _ = sweep.tick() => self.sweep_deleted_topics().await,
            }
        }
    }

    /// Proposes forgetting `topic` in the offsets partitions led here (or
    /// only in `only`, a partition index).
    async fn forget_topic(&self, topic: &str, only: Option<i32>) {
        for pg in self.partition_groups() {
            if &*pg.tp.topic != OFFSETS_TOPIC || only.is_some_and(|p| p != pg.tp.partition) || !self.leadership_of(&pg).leads {
                continue;
            }
            info!(node_id = self.node_id(), partition = %pg.tp, topic, "forgetting committed offsets of a deleted topic");
            if let Err(e) = pg.raft.client_write_ff(Command::Group(GroupCommand::ForgetTopic { topic: topic.to_string() }), None).await {
                warn!(node_id = self.node_id(), partition = %pg.tp, topic, error = %e, "could not propose forgetting a deleted topic's offsets");
            }
        }
    }

    /// Forgets, in the offsets partitions led here, the offsets of topics
    /// that no longer exist.
    pub async fn sweep_deleted_topics(&self) {
        let md = self.metadata();
        for pg in self.partition_groups() {
            if &*pg.tp.topic != OFFSETS_TOPIC || !self.leadership_of(&pg).serving {
                continue;
            }
            match pg.log.committed_topics() {
                Ok(topics) => {
                    for topic in topics.into_iter().filter(|t| !md.topics.contains_key(t)) {
                        self.forget_topic(&topic, Some(pg.tp.partition)).await;
                    }
                }
                Err(e) => warn!(node_id = self.node_id(), partition = %pg.tp, error = %e, "could not list the topics of committed offsets"),
            }
        }
    }
}
