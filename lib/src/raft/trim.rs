//! Moving a partition's log start: DeleteRecords and time/size retention.
//!
//! Both end in one `Command::Trim` through the partition's Raft group, so
//! every replica moves its log start at the same place in its log and all
//! agree on it. Retention is decided by the leader alone, every
//! `log_retention_check_interval_ms`, by the rule in `log::retention`; a new
//! leader carries on where the old one stopped.

use std::time::Duration;

use openraft::impls::ProgressResponder;
use tracing::{info, warn};

use crate::raft::engine::{StorageEngine, Transport};
use crate::raft::groups::{GroupManager, PartitionGroup};
use crate::log::retention::Retention;
use crate::cluster::metadata::ControllerError;
use crate::offsets::OFFSETS_TOPIC;
use crate::store::StoreError;
use crate::{Command, CommandResult, Offset, TopicPartition};

/// How long a trim may take to commit before DeleteRecords times out.
const TRIM_WAIT: Duration = Duration::from_secs(30);

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

impl<E: StorageEngine, T: Transport> GroupManager<E, T> {
    /// DeleteRecords: moves the log start of `tp`, led here, to `offset`
    /// (-1: the high watermark). Returns the log start after it (Kafka's low
    /// watermark), which stays where it is for an offset below it.
    pub(crate) async fn delete_records_of(&self, tp: &TopicPartition, offset: Offset) -> Result<Offset, StoreError> {
        if &*tp.topic == OFFSETS_TOPIC {
            return Err(StoreError::Controller(ControllerError::InvalidTopic(tp.topic.to_string(), "records of an internal topic cannot be deleted".into())));
        }
        let pg = self.serving_leader(tp)?;
        let (log_start, hwm) = (pg.log.log_start_offset(), pg.log.high_watermark());
        let to = if offset == -1 { hwm } else { offset };
        if to < 0 || to > hwm {
            return Err(StoreError::OffsetOutOfRange { tp: tp.clone(), offset, log_start, high_watermark: hwm });
        }
        if to <= log_start {
            return Ok(log_start);
        }
        self.trim(&pg, to, "delete_records").await
    }

    /// Replicates a trim of `pg` to `to`; returns the log start once applied.
    async fn trim(&self, pg: &PartitionGroup<E>, to: Offset, reason: &'static str) -> Result<Offset, StoreError> {
        let node = self.node_id();
        let tp = pg.tp.clone();
        let before = pg.log.log_start_offset();
        let (responder, rx) = ProgressResponder::complete_only();
        pg.raft.client_write_ff(Command::Trim { log_start_offset: to }, Some(responder)).await.map_err(|_| StoreError::ShuttingDown { node })?;
        let result = match tokio::time::timeout(TRIM_WAIT, rx).await {
            Err(_) | Ok(Err(_)) => return Err(StoreError::Timeout(tp)),
            Ok(Ok(r)) => r,
        };
        match result {
            Ok(resp) => match resp.data {
                CommandResult::Trimmed { log_start_offset } => {
                    info!(node_id = node, partition = %tp, reason, from = before, to = log_start_offset, "log start moved");
                    self.metrics.log_trimmed(reason, log_start_offset - before);
                    Ok(log_start_offset)
                }
                other => Err(StoreError::Storage { node, detail: format!("trim of {tp} to {to} answered {other:?}") }),
            },
            Err(openraft::errors::ClientWriteError::ForwardToLeader(f)) => Err(StoreError::NotLeader(tp, f.leader_id)),
            Err(e) => Err(StoreError::Storage { node, detail: format!("trim of {tp} to {to}: {e}") }),
        }
    }

    /// Proposes forgetting the idempotent producers of `pg` whose last batch
    /// is older than producer.id.expiration.ms, if there are any.
    async fn expire_producers(&self, pg: &PartitionGroup<E>, now: i64) {
        let cutoff = now.saturating_sub(self.cfg.retention.producer_expiration_ms);
        match pg.log.oldest_producer_timestamp() {
            Ok(Some(oldest)) if oldest < cutoff => {
                if let Err(e) = pg.raft.client_write_ff(Command::ExpireProducers { last_before_ms: cutoff }, None).await {
                    warn!(node_id = self.node_id(), partition = %pg.tp, error = %e, "could not propose expiring idempotent producers");
                }
            }
            Ok(_) => {}
            Err(e) => warn!(node_id = self.node_id(), partition = %pg.tp, error = %e, "could not read the idempotent producers"),
        }
    }

    /// One look at every partition led here: trims those whose topic's
    /// retention lets batches go.
    pub async fn apply_retention(&self) {
        let md = self.metadata();
        let now = now_ms();
        for pg in self.partition_groups() {
            if &*pg.tp.topic == OFFSETS_TOPIC || !self.leadership_of(&pg).serving {
                continue;
            }
            self.expire_producers(&pg, now).await;
            let Some(configs) = md.effective_configs(&pg.tp.topic, self.node_id()) else { continue };
            let rule = Retention::of_topic(&configs, &self.cfg.retention);
            if rule.keeps_everything() {
                continue;
            }
            let result = match pg.log.trim_point(&rule, now) {
                Ok(Some(to)) => self.trim(&pg, to, "retention").await.map(|_| ()),
                Ok(None) => Ok(()),
                Err(e) => Err(e),
            };
            if let Err(e) = result {
                warn!(node_id = self.node_id(), partition = %pg.tp, error = %e, "retention could not trim the log");
            }
        }
    }
}
