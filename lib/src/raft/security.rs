//! Users' SCRAM credentials and ACLs changed through the controller group:
//! proposed, then awaited (bounded) until this node's metadata has them, so
//! that a DescribeAcls or a login here right after sees the change.

use std::time::Duration;

use tokio::time::Instant;
use tracing::info;

use super::engine::{StorageEngine, Transport};
use super::groups::GroupManager;
use crate::cluster::metadata::ControllerCommand;
use crate::security::SecurityCommand;
use crate::StoreError;

/// How long a change waits to be applied here after it committed.
const APPLIED_WAIT: Duration = Duration::from_secs(5);

impl<E: StorageEngine, T: Transport> GroupManager<E, T> {
    pub(crate) async fn change_security(&self, cmd: SecurityCommand) -> Result<(), StoreError> {
        self.wait_controller_ready().await;
        let what = cmd.summary();
        self.propose(ControllerCommand::Security(cmd.clone())).await?;
        // Never the credentials themselves: only who and which mechanism.
        info!(node_id = self.node_id(), change = %what, "security metadata changed");
        let deadline = Instant::now() + APPLIED_WAIT;
        while Instant::now() < deadline && !self.metadata().security.reflects(&cmd) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }
}
