//! Chronik core, by concern (each layer uses only those before it):
//!
//! - `ids`: the vocabulary (nodes, groups, partitions, offsets).
//! - `log/`: the partition log's rules, pure: batches, idempotence,
//!   retention, compaction, and what they read of a topic's configs.
//! - `config`, `metrics`: the node's settings and bounds, its metrics.
//! - `security/`: principals, SCRAM, ACLs, listeners and TLS, pure.
//! - `cluster/`: what the controller group replicates and decides, pure:
//!   metadata (topics, placement, configs) and the plans for partition
//!   moves and membership.
//! - `store`, `offsets`: the partition store the Kafka front door talks to,
//!   and consumer groups' records.
//! - `raft/`: the Raft runtime: the group manager that owns every Raft group
//!   of this node, liveness, and the drivers that carry out the plans.
//!
//! Invariant: only [`raft::groups::GroupManager`] creates or drops Raft groups.

pub mod cluster;
pub mod config;
pub mod ids;
pub mod log;
pub mod metrics;
pub mod offsets;
pub mod raft;
pub mod security;
pub mod serde_b64;
pub mod store;

pub use ids::*;
pub use raft::types::*;
pub use store::{Acks, PartitionStore, StoreError};
