//! The partition log's rules, shared by every replica: the record batch
//! format and what a produced batch must satisfy (`batch`, `records`,
//! `compression`), and the idempotent producer's sequence rules
//! (`producers`), and how far retention may trim the log (`retention`).
//! Pure functions over bytes and state: no I/O, no Raft.

pub mod batch;
pub mod compression;
pub mod producers;
pub mod records;
pub mod retention;
