//! Deciding compactions (cleanup.policy=compact). Every
//! `log_cleaner_backoff_ms` each partition leader looks at its compacted
//! partitions and, when one is due by its topic's rules
//! (`log::compaction::Policy`), replicates a `Command::Compact` through its
//! Raft group. Every replica then runs that same job on its own log in the
//! background (the storage engine's cleaner), so all end with the same bytes.

use tracing::{info, warn};

use crate::raft::engine::{StorageEngine, Transport};
use crate::raft::groups::{GroupManager, PartitionGroup};
use crate::log::compaction::Policy;
use crate::offsets::OFFSETS_TOPIC;
use crate::raft::trim::now_ms;
use crate::Command;

/// What one key of a compaction's key map costs in memory (a 16-byte hash,
/// an offset and the hash table's overhead): `log_cleaner_dedupe_buffer_bytes`
/// over this is the most keys a compaction holds.
pub const KEY_MAP_ENTRY_BYTES: usize = 40;

impl<E: StorageEngine, T: Transport> GroupManager<E, T> {
    /// One look at every compacted partition led here.
    pub async fn compact_due(&self) {
        let md = self.metadata();
        let now = now_ms();
        for pg in self.partition_groups() {
            if &*pg.tp.topic == OFFSETS_TOPIC || !self.leadership_of(&pg).serving {
                continue;
            }
            let Some(policy) = md.effective_configs(&pg.tp.topic, self.node_id()).and_then(|c| Policy::of_topic(&c)) else { continue };
            self.compact_if_due(&pg, &policy, now).await;
        }
    }

    async fn compact_if_due(&self, pg: &PartitionGroup<E>, policy: &Policy, now: i64) {
        let view = match pg.log.compaction_view(now.saturating_sub(policy.min_lag_ms)) {
            Ok(v) => v,
            Err(e) => return warn!(node_id = self.node_id(), partition = %pg.tp, error = %e, "could not look at the partition for compaction"),
        };
        let Some(dirty_end) = policy.due(&view, now) else { return };
        let clean_from = view.cleaned_end.max(pg.log.log_start_offset());
        let cmd = Command::Compact {
            clean_from,
            dirty_end,
            tombstones_before_ms: now.saturating_sub(policy.delete_retention_ms),
            keys_max: (self.cfg.limits.log_cleaner_dedupe_buffer_bytes / KEY_MAP_ENTRY_BYTES).max(1) as u64,
            decompressed_bytes_max: self.cfg.limits.batch_decompressed_bytes_max as u64,
        };
        match pg.raft.client_write_ff(cmd, None).await {
            Ok(()) => info!(node_id = self.node_id(), partition = %pg.tp, clean_from, dirty_end, dirty_bytes = view.dirty_bytes,
                clean_bytes = view.clean_bytes, "compaction proposed"),
            Err(e) => warn!(node_id = self.node_id(), partition = %pg.tp, error = %e, "could not propose a compaction"),
        }
    }
}
