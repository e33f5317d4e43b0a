//! Expiry of committed offsets (Kafka's offsets.retention.minutes, KIP-211):
//! every `offsets_retention_check_interval_ms` the leader of each offsets
//! partition looks at its groups and replicates
//! `GroupCommand::ExpireOffsets` for the offsets whose time has come (the
//! rule is `offsets::expired_offsets`), so every replica drops the same ones.
//! A group left Empty without offsets goes with its last ones.

use tracing::{info, warn};

use crate::raft::engine::{StorageEngine, Transport};
use crate::raft::groups::{GroupManager, PartitionGroup};
use crate::offsets::{self, GroupCommand, OFFSETS_TOPIC};
use crate::store::StoreError;
use crate::raft::trim::now_ms;
use crate::Command;

impl<E: StorageEngine, T: Transport> GroupManager<E, T> {
    /// One look at the groups of every offsets partition led here.
    pub async fn expire_offsets(&self) {
        for pg in self.partition_groups() {
            if &*pg.tp.topic != OFFSETS_TOPIC || !self.leadership_of(&pg).serving {
                continue;
            }
            if let Err(e) = self.expire_offsets_of(&pg).await {
                warn!(node_id = self.node_id(), partition = %pg.tp, error = %e, "could not look for expired committed offsets");
            }
        }
    }

    async fn expire_offsets_of(&self, pg: &PartitionGroup<E>) -> Result<(), StoreError> {
        let now = now_ms();
        let retention = self.cfg.retention.offsets_retention_ms;
        for group in pg.log.group_names()? {
            let record = pg.log.group_record(&group)?;
            let since = pg.log.group_stored_at(&group)?;
            let expired = offsets::expired_offsets(record.as_ref(), since, &pg.log.committed_offsets(&group)?, retention, now);
            if expired.is_empty() {
                continue;
            }
            info!(node_id = self.node_id(), partition = %pg.tp, group, offsets = expired.len(), "committed offsets expired");
            let cmd = Command::Group(GroupCommand::ExpireOffsets { group, offsets: expired });
            if let Err(e) = pg.raft.client_write_ff(cmd, None).await {
                warn!(node_id = self.node_id(), partition = %pg.tp, error = %e, "could not propose expiring committed offsets");
            }
        }
        Ok(())
    }
}
