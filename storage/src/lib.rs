//! sled-backed storage for every Raft group of a node: one `sled::Db` per
//! process, keys prefixed with the group id, and one flusher thread that makes
//! appends of all groups durable together (group commit across partitions).
//!
//! Trees (keys big endian, `g` = group id as 8 bytes):
//! - `log`:    g ++ index        -> bincode(Entry). A partition's entries *are*
//!   its record data; nothing else stores the payload.
//! - `meta`:   g ++ b'v' vote, g ++ b'c' committed, g ++ b'p' last purged
//! - `sm`:     g ++ b's' state machine state, g ++ b'n' current snapshot,
//!   g ++ b'i' ++ base offset -> batch index (log index, last offset, max timestamp),
//!   g ++ b'k' ++ log index ++ next offset -> a checkpoint (see `snapshots`)
//! - `groups`: g -> () for every partition group with state here
//! - `chunks`: the pieces of large `log` and `sm` values, which would
//!   otherwise make sled write pages it does not fsync (see `chunked`)

mod chunked;
pub mod compaction;
mod flush;
mod keys;
mod local_ack;
mod log_store;
mod snapshots;
mod state_machine;
mod time_index;

pub use flush::Flusher;
pub use sled::SegmentStats;
pub use log_store::SledLog;
pub use state_machine::SledStateMachine;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chronik::raft::engine::{OpenedGroup, PartitionLog, StorageEngine};
use chronik::cluster::metadata::ClusterMetadata;
use chronik::{GroupId, NodeId, StoreError, CONTROLLER_GROUP};
use chunked::Chunked;
use tokio::sync::watch;
use tracing::info;

pub(crate) struct Inner {
    pub node: NodeId,
    pub db: sled::Db,
    pub log: Chunked,
    pub meta: sled::Tree,
    pub sm: Chunked,
    pub groups: sled::Tree,
    pub flusher: Flusher,
    /// Held while a log entry is rewritten in place (compaction) and while
    /// log entries or a group's state go (purge, truncation, snapshot
    /// install, dropping a group), so that a rewrite never brings back what
    /// just went.
    pub rewrite: std::sync::Mutex<()>,
    pub cleaner: compaction::Cleaner,
    pub compaction_stats: compaction::CompactionStats,
}

/// Runs sled work that can take long (a bulk removal, a snapshot install)
/// so that it never holds up a tokio worker thread: on the multi-threaded
/// runtime the worker's other tasks move to another thread meanwhile.
pub(crate) fn off_runtime<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

impl Inner {
    pub fn storage_err(&self, detail: impl std::fmt::Display) -> StoreError {
        StoreError::Storage { node: self.node, detail: detail.to_string() }
    }
}

/// The storage engine of one node.
pub struct SledEngine {
    inner: Arc<Inner>,
    dir: PathBuf,
}

impl SledEngine {
    /// Opens (or creates) the node's database under `dir`, with at most
    /// `cache_bytes` of pages cached in memory.
    pub fn open(dir: &Path, node: NodeId, cache_bytes: u64) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let started = std::time::Instant::now();
        let db = sled::Config::new()
            .path(dir)
            .mode(sled::Mode::HighThroughput)
            .segment_size(chunked::SEGMENT_SIZE)
            .cache_capacity(cache_bytes)
            .open()
            .map_err(|e| std::io::Error::other(format!("sled database in {}: {e}", dir.display())))?;
        let tree = |name: &str| db.open_tree(name).map_err(std::io::Error::other);
        let (meta, groups, chunks) = (tree("meta")?, tree("groups")?, tree("chunks")?);
        let (log, sm) = (Chunked::open(&db, "log", b'l', &chunks)?, Chunked::open(&db, "sm", b's', &chunks)?);
        warn_of_blobs(dir);
        // sled writes its `conf` file on open without syncing it; a power
        // loss soon after leaves it empty, and sled then guesses.
        std::fs::File::open(dir.join("conf")).and_then(|f| f.sync_all())?;
        std::fs::File::open(dir).and_then(|d| d.sync_all())?;
        let flusher = Flusher::start(db.clone())?;
        info!(node_id = node, dir = %dir.display(), groups = groups.len(), elapsed_ms = started.elapsed().as_millis() as u64, "storage opened");
        let inner = Arc::new(Inner { node, db, log, meta, sm, groups, flusher, rewrite: Default::default(), cleaner: compaction::Cleaner::new(), compaction_stats: Default::default() });
        inner.cleaner.start(Arc::downgrade(&inner))?;
        Ok(Self { inner, dir: dir.to_path_buf() })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Bytes available to this process on the data directory's filesystem.
    pub fn disk_free_bytes(&self) -> std::io::Result<u64> {
        free_bytes(&self.dir)
    }

    /// Bytes the database occupies on disk.
    pub fn size_on_disk(&self) -> u64 {
        self.inner.db.size_on_disk().unwrap_or(0)
    }

    /// Tells `observer` of every group-commit flush (duration, writers served).
    pub fn observe_flushes(&self, observer: flush::FlushObserver) {
        self.inner.flusher.observe(observer);
    }

    /// What this node's compactions have done since it started.
    pub fn compaction_stats(&self) -> &compaction::CompactionStats {
        &self.inner.compaction_stats
    }

    pub fn flush_stats(&self) -> flush::FlushStats {
        self.inner.flusher.stats()
    }

    /// sled's log segments by state: how much of the file is live.
    pub fn segment_stats(&self) -> SegmentStats {
        self.inner.db.segment_stats()
    }
}

/// sled's blob files are never fsynced (see `chunked`); none should ever be
/// written, and one that exists is worth a warning.
fn warn_of_blobs(dir: &Path) {
    let blobs = std::fs::read_dir(dir.join("blobs")).map(|d| d.count()).unwrap_or(0);
    if blobs > 0 {
        tracing::warn!(dir = %dir.display(), blobs, "sled wrote blob files, which it does not make durable");
    }
}

/// statvfs(2): the blocks an unprivileged writer may still use.
fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).map_err(std::io::Error::other)?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a valid NUL-terminated string and `st` a writable statvfs.
    if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(st.f_bavail as u64 * st.f_frsize as u64)
}

impl StorageEngine for SledEngine {
    type Log = SledLog;
    type Sm = SledStateMachine;

    fn disk_free_bytes(&self) -> Option<u64> {
        free_bytes(&self.dir).ok()
    }

    fn open_controller(&self) -> Result<(OpenedGroup<Self>, watch::Receiver<Arc<ClusterMetadata>>), StoreError> {
        let log = SledLog::new(self.inner.clone(), CONTROLLER_GROUP, None);
        let (sm, rx) = SledStateMachine::open_controller(self.inner.clone())?;
        Ok((OpenedGroup { log, sm }, rx))
    }

    fn open_partition(&self, group: GroupId) -> Result<(OpenedGroup<Self>, Arc<dyn PartitionLog>), StoreError> {
        self.inner.groups.insert(keys::group(group), &[]).map_err(|e| self.inner.storage_err(e))?;
        let local_acks = Arc::new(local_ack::LocalAcks::default());
        let log = SledLog::new(self.inner.clone(), group, Some(local_acks.clone()));
        let (sm, reader) = SledStateMachine::open_partition(self.inner.clone(), group, local_acks)?;
        Ok((OpenedGroup { log, sm }, reader))
    }

    fn local_groups(&self) -> Result<Vec<GroupId>, StoreError> {
        self.inner
            .groups
            .iter()
            .keys()
            .map(|k| k.map(|k| keys::parse_group(&k)).map_err(|e| self.inner.storage_err(e)))
            .collect()
    }

    fn drop_group(&self, group: GroupId) -> Result<(), StoreError> {
        let prefix = keys::group(group);
        let _rewriting = self.inner.rewrite.lock().unwrap();
        let started = std::time::Instant::now();
        let mut removed = 0u64;
        for tree in [&self.inner.log, &self.inner.sm] {
            removed += off_runtime(|| {
                tree.remove_prefix(&prefix, |n| info!(node_id = self.inner.node, group = %group, keys_removed = n, "dropping group data"))
            })
            .map_err(|e| self.inner.storage_err(e))?;
        }
        let mut batch = sled::Batch::default();
        for k in self.inner.meta.scan_prefix(prefix).keys() {
            batch.remove(k.map_err(|e| self.inner.storage_err(e))?);
        }
        self.inner.meta.apply_batch(batch).map_err(|e| self.inner.storage_err(e))?;
        self.inner.groups.remove(prefix).map_err(|e| self.inner.storage_err(e))?;
        info!(node_id = self.inner.node, group = %group, keys_removed = removed, elapsed_ms = started.elapsed().as_millis() as u64, "dropped group data");
        Ok(())
    }
}

#[cfg(test)]
mod sled_tests;
#[cfg(test)]
mod tests;
