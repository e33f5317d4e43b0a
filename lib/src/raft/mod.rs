//! The Raft runtime: the openraft type configuration (`types`), the storage
//! and transport it runs on (`engine`), the group manager that owns every
//! Raft group of this node (`groups`) and serves the partition store on top
//! of it (`broker`), node liveness and campaigns (`liveness`, `isr`, the loop in `timing`),
//! Raft RPCs from peers (`rpc`), and the
//! drivers that carry out the cluster's plans and the log's housekeeping:
//! partition moves (`reassignment`), membership (`membership`), leader
//! balance (`leadership`), retention (`trim`), compaction, segments, deleted
//! topics' offsets (`topic_cleanup`) and expired offsets (`offset_expiry`);
//! SCRAM credentials and ACLs through the controller (`security`).

pub mod broker;
pub mod compaction;
pub mod engine;
pub mod groups;
pub mod isr;
pub mod leadership;
pub mod liveness;
pub mod membership;
pub mod offset_expiry;
pub mod reassignment;
mod rpc;
mod security;
pub mod segments;
mod timing;
pub mod topic_cleanup;
pub mod trim;
pub mod types;
