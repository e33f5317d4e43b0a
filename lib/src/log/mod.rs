//! The partition log's rules, shared by every replica: the record batch
//! format and what a produced batch must satisfy (`batch`, `records`,
//! `compression`), the idempotent producer's sequence rules (`producers`),
//! how far retention may trim the log (`retention`) and which records
//! compaction keeps (`compaction`), from a topic's configs (`configs`).
//! Pure functions over bytes and state: no I/O, no Raft.

pub mod batch;
pub mod compaction;
pub mod compression;
pub mod configs;
pub mod producers;
pub mod records;
pub mod retention;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
