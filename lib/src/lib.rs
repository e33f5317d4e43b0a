//! Chronik core: the types every crate shares, the cluster config, the
//! partition-store interface the Kafka front door talks to, the controller's
//! metadata state machine logic, and the group manager that owns every Raft
//! group of this node.
//!
//! Invariant: only [`groups::GroupManager`] creates or drops Raft groups.

pub mod broker;
pub mod compaction;
pub mod config;
pub mod dynamic_config;
pub mod engine;
pub mod groups;
pub mod isr;
pub mod leadership;
pub mod liveness;
pub mod log;
pub mod membership;
pub mod metadata;
pub mod metrics;
pub mod offset_expiry;
pub mod offsets;
pub mod reassignment;
pub mod segments;
pub mod serde_b64;
pub mod store;
pub mod topic_cleanup;
pub mod topic_config;
pub mod trim;
pub mod types;

pub use store::{Acks, PartitionStore, StoreError};
pub use types::*;
