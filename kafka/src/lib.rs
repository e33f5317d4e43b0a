//! The Kafka wire-protocol front door. Decodes requests with `kafka-protocol`,
//! calls the partition store, encodes responses. One file per API under
//! `handlers/`; errors map onto Kafka codes in `errors.rs` only.
//!
//! Invariant: this crate depends on the partition-store interface
//! (`chronik::PartitionStore`), never on openraft, sled or axum.

pub mod apis;
pub mod authz;
pub mod coordinator;
pub mod decode;
pub mod errors;
pub mod fuzzing;
pub mod handlers;
mod listeners;
pub mod sasl;
pub mod server;

pub use coordinator::GroupSettings;
pub use server::{serve, ServerConfig};
