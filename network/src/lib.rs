//! Moving Raft RPCs between nodes as HTTP/JSON, and the admin/metrics HTTP API.
//!
//! Invariant: this crate moves opaque `(group, rpc)` messages; it knows
//! nothing about topics or partitions.

pub mod admin;
mod admin_moves;
mod admin_security;
pub mod auth;
pub mod client;
pub mod peers;
pub mod server;
pub mod wire;

pub use client::HttpTransport;
