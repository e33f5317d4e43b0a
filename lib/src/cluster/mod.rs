//! What the controller group replicates and decides, as pure functions:
//! cluster metadata and its state machine (`metadata`: nodes, topics,
//! placement, assignments), topic and broker configs (`topic_config`,
//! `dynamic_config`), and the plans that `crate::raft` carries out: a
//! partition's next move step (`moves`), the controller group's membership,
//! drains and balancing (`membership`). No I/O, no Raft.

pub mod dynamic_config;
pub mod membership;
pub mod metadata;
pub mod moves;
pub mod topic_config;
