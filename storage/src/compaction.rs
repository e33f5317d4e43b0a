//! Compaction on this replica: the jobs `Command::Compact` leaves behind,
//! run one at a time on a thread of their own (the cleaner), so that a long
//! compaction never holds up the partition's applies.
//!
//! A job rewrites the partition's Raft log entries in place: each batch
//! becomes the same batch without the records compaction drops
//! (`chronik::log::compaction`), with the same base offset and
//! lastOffsetDelta, and its index entry shrinks with it (or goes, for a
//! batch left without records). Every replica runs the same job on the same
//! batches and writes the same bytes; a follower sent an entry its leader
//! has already compacted stores that, which its own run then leaves as it
//! is. A job is recorded where the command is applied and removed once done,
//! so a restart carries it on. Rewrites, Raft log purges, truncations,
//! snapshot installs and dropping a group exclude each other (`Inner::rewrite`).

use std::collections::HashSet;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use chronik::log::compaction::CompactionView;
use chronik::raft::engine::PartitionLog;
use chronik::log::compaction::{self, Compacted, KeyMap, Rule};
use chronik::{Command, Entry, GroupId, Offset};
use openraft::EntryPayload;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::chunked::Chunked;
use crate::log_store::{decode, encode, io_err};
use crate::state_machine::{IndexValue, PartitionReader};
use crate::{keys, Inner};

/// A compaction recorded by the state machine (g ++ b'C'), as the command said.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Job {
    pub clean_from: Offset,
    pub dirty_end: Offset,
    pub tombstones_before_ms: i64,
    pub keys_max: u64,
    pub decompressed_bytes_max: u64,
    /// The log index of the command: tells this job from a later one.
    pub log_index: u64,
}

/// What this node's cleaner has done since it started (for metrics).
#[derive(Debug, Default)]
pub struct CompactionStats {
    pub jobs: AtomicU64,
    pub batches_rewritten: AtomicU64,
    pub bytes_removed: AtomicU64,
    /// Compactions whose dirty part had more keys than the bound
    /// (log_cleaner_dedupe_buffer_bytes).
    pub key_map_full: AtomicU64,
}

/// A job's log line every this many batches.
const PROGRESS_EVERY_BATCHES: u64 = 10_000;

/// The node's cleaner: a thread that runs the compaction jobs of the
/// partitions it is handed, one at a time.
pub(crate) struct Cleaner {
    tx: Mutex<Option<mpsc::Sender<Arc<PartitionReader>>>>,
}

impl Cleaner {
    pub(crate) fn new() -> Self {
        Self { tx: Mutex::new(None) }
    }

    pub(crate) fn start(&self, inner: std::sync::Weak<Inner>) -> io::Result<()> {
        let (tx, rx) = mpsc::channel::<Arc<PartitionReader>>();
        *self.tx.lock().unwrap() = Some(tx);
        std::thread::Builder::new().name("chronik-cleaner".into()).spawn(move || {
            while let Ok(first) = rx.recv() {
                // Several requests for a partition come to one run.
                let mut queued = vec![first];
                queued.extend(rx.try_iter());
                let mut seen = HashSet::new();
                for r in queued {
                    if !seen.insert(r.group()) {
                        continue;
                    }
                    let Some(inner) = inner.upgrade() else { return };
                    if let Err(e) = run(&inner, &r) {
                        warn!(node_id = inner.node, group = %r.group(), error = %e, "compaction failed; it is tried again at the next one");
                    }
                }
            }
        })?;
        Ok(())
    }

    /// Hands the cleaner a partition whose job to run (if it still has one).
    pub(crate) fn submit(&self, reader: Arc<PartitionReader>) {
        if let Some(tx) = self.tx.lock().unwrap().as_ref() {
            let _ = tx.send(reader);
        }
    }
}

fn job_of(inner: &Inner, group: GroupId) -> io::Result<Option<Job>> {
    match inner.sm.tree.get(keys::tag(group, keys::COMPACTION)).map_err(io_err)? {
        Some(v) => Chunked::inline(&v).and_then(decode).map(Some),
        None => Ok(None),
    }
}

/// Where this replica's last compaction of `group` ended (0: none yet).
pub(crate) fn cleaned_end(inner: &Inner, group: GroupId) -> io::Result<Offset> {
    match inner.sm.tree.get(keys::tag(group, keys::CLEANED)).map_err(io_err)? {
        Some(v) => Ok(i64::from_be_bytes(Chunked::inline(&v)?.try_into().map_err(io_err)?)),
        None => Ok(0),
    }
}

/// Whether `group` has a job waiting.
pub(crate) fn pending(inner: &Inner, group: GroupId) -> io::Result<bool> {
    Ok(inner.sm.tree.contains_key(keys::tag(group, keys::COMPACTION)).map_err(io_err)?)
}

/// The batch of a log entry that holds one (None: purged, or not an append).
fn stored_batch(inner: &Inner, group: GroupId, log_index: u64) -> io::Result<Option<(Entry, Bytes)>> {
    let Some(raw) = inner.log.get(&keys::log(group, log_index))? else { return Ok(None) };
    let entry: Entry = decode(&raw)?;
    match &entry.payload {
        EntryPayload::Normal(Command::Append { batch, .. }) => {
            let b = batch.clone();
            Ok(Some((entry, b)))
        }
        _ => Ok(None),
    }
}

/// Index entries from `from` (a batch base offset or any offset in one)
/// below `to`, in offset order.
fn index_range(inner: &Inner, r: &PartitionReader, from: Offset, to: Offset) -> io::Result<Vec<(Offset, Vec<u8>, IndexValue)>> {
    let start = r.first_index_key(from).map_err(io_err)?;
    let mut out = Vec::new();
    for kv in inner.sm.tree.range(start..keys::index(r.group(), to).to_vec()) {
        let (k, v) = kv.map_err(io_err)?;
        out.push((keys::index_offset(&k), v.to_vec(), IndexValue::decode(Chunked::inline(&v)?)));
    }
    Ok(out)
}

struct Figures {
    batches: u64,
    rewritten: u64,
    emptied: u64,
    bytes_before: u64,
    bytes_after: u64,
}

/// Runs `r`'s job, if it has one.
pub(crate) fn run(inner: &Inner, r: &PartitionReader) -> io::Result<()> {
    let group = r.group();
    let Some(job) = job_of(inner, group)? else { return Ok(()) };
    let started = Instant::now();
    let rule = Rule { tombstones_before_ms: job.tombstones_before_ms, decompressed_bytes_max: job.decompressed_bytes_max as usize };
    // The keys of the dirty part, up to the bound.
    let mut map = KeyMap::new(job.keys_max as usize);
    let mut end = job.dirty_end;
    let from = job.clean_from.max(r.log_start_offset());
    for (base, _, iv) in index_range(inner, r, from, job.dirty_end)? {
        let Some((_, b)) = stored_batch(inner, group, iv.log_index)? else { continue };
        match map.add_batch(&b, base, rule.decompressed_bytes_max) {
            Ok(true) => {}
            Ok(false) => {
                end = base;
                inner.compaction_stats.key_map_full.fetch_add(1, Ordering::Relaxed);
                info!(node_id = inner.node, %group, keys = map.len(), end, dirty_end = job.dirty_end,
                    "compaction key map full (log_cleaner_dedupe_buffer_bytes): compacting up to here, the rest next time");
                break;
            }
            Err(e) => warn!(node_id = inner.node, %group, base_offset = base, error = %e, "a batch's keys cannot be read; compaction leaves them out"),
        }
    }
    // Every batch below `end` against those keys.
    let mut f = Figures { batches: 0, rewritten: 0, emptied: 0, bytes_before: 0, bytes_after: 0 };
    for (base, stored, iv) in index_range(inner, r, r.log_start_offset(), end)? {
        if iv.last_offset >= end {
            break;
        }
        let _rewriting = inner.rewrite.lock().unwrap();
        if job_of(inner, group)?.as_ref() != Some(&job) {
            info!(node_id = inner.node, %group, "compaction stopped: its partition was replaced, dropped or given a newer job");
            return Ok(());
        }
        compact_one(inner, r, base, &stored, &iv, &map, &rule, &mut f)?;
        f.batches += 1;
        if f.batches % PROGRESS_EVERY_BATCHES == 0 {
            info!(node_id = inner.node, %group, batches = f.batches, rewritten = f.rewritten, "compaction in progress");
        }
    }
    let _rewriting = inner.rewrite.lock().unwrap();
    if job_of(inner, group)?.as_ref() == Some(&job) {
        let mut b = sled::Batch::default();
        b.remove(&keys::tag(group, keys::COMPACTION));
        b.insert(&keys::tag(group, keys::CLEANED), [&[0u8][..], &end.to_be_bytes()].concat());
        inner.sm.tree.apply_batch(b).map_err(io_err)?;
    }
    let stats = &inner.compaction_stats;
    stats.jobs.fetch_add(1, Ordering::Relaxed);
    stats.batches_rewritten.fetch_add(f.rewritten, Ordering::Relaxed);
    stats.bytes_removed.fetch_add(f.bytes_before.saturating_sub(f.bytes_after), Ordering::Relaxed);
    info!(node_id = inner.node, %group, keys = map.len(), clean_from = from, end, batches = f.batches, rewritten = f.rewritten,
        emptied = f.emptied, bytes_before = f.bytes_before, bytes_after = f.bytes_after, elapsed_ms = started.elapsed().as_millis() as u64,
        "compaction done");
    Ok(())
}

/// Compacts the batch at `base` (its index entry as read: `stored`, `iv`),
/// under the rewrite lock.
#[allow(clippy::too_many_arguments)]
fn compact_one(inner: &Inner, r: &PartitionReader, base: Offset, stored: &[u8], iv: &IndexValue, map: &KeyMap, rule: &Rule, f: &mut Figures) -> io::Result<()> {
    let group = r.group();
    let Some((entry, b)) = stored_batch(inner, group, iv.log_index)? else { return Ok(()) };
    let (new_bytes, records, max_timestamp) = match compaction::compact_batch(&b, base, map, rule) {
        Ok(Compacted::Unchanged) => (None, -1, iv.max_timestamp),
        Ok(Compacted::Rewritten { batch, records, max_timestamp }) => (Some(batch), records, max_timestamp),
        Err(e) => {
            warn!(node_id = inner.node, %group, base_offset = base, error = %e, "a batch cannot be compacted; it stays whole");
            return Ok(());
        }
    };
    if let Some(nb) = &new_bytes {
        let mut rewritten = entry.clone();
        rewritten.payload = EntryPayload::Normal(Command::Append { batch: Bytes::from(nb.clone()), token: 0 });
        let mut w = inner.log.writes();
        w.insert(&keys::log(group, iv.log_index), &encode(&rewritten)?)?;
        w.commit()?;
        f.rewritten += 1;
    }
    // The index follows the entry: its size (and newest timestamp), or it
    // goes with the batch's last record. An earlier run may have rewritten
    // the entry and stopped before the index: set it from the entry.
    let len = new_bytes.as_ref().map(|n| n.len()).unwrap_or(b.len()) as u32;
    let empty = records == 0 || (new_bytes.is_none() && chronik::log::batch::parse_header(&b).is_ok_and(|h| h.record_count == 0));
    f.bytes_before += iv.bytes as u64;
    let updated = (!empty).then(|| IndexValue { bytes: len, max_timestamp, ..*iv });
    if updated.as_ref() == Some(iv) {
        f.bytes_after += iv.bytes as u64;
        return Ok(());
    }
    let key = keys::index(group, base);
    let new_stored = updated.map(|u| [&[0u8][..], &u.encode()[..]].concat());
    // Only if the index entry is still the one read: a trim may have taken it.
    if inner.sm.tree.compare_and_swap(key, Some(stored), new_stored).map_err(io_err)?.is_ok() {
        let saved = iv.bytes.saturating_sub(updated.map(|u| u.bytes).unwrap_or(0)) as u64;
        r.retained.fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| Some(v.saturating_sub(saved))).ok();
        f.bytes_after += updated.map(|u| u.bytes as u64).unwrap_or(0);
        f.emptied += empty as u64;
    }
    Ok(())
}

/// What the leader needs to decide on the next compaction (see
/// `chronik::log::compaction::CompactionView`).
pub(crate) fn view(inner: &Inner, r: &PartitionReader, newest_cleanable_ms: i64) -> io::Result<CompactionView> {
    let group = r.group();
    let (log_start, hwm) = (r.log_start_offset(), r.high_watermark());
    let cleaned_end = cleaned_end(inner, group)?.max(log_start);
    let closed_end = r.closed_end.load(Ordering::Acquire).min(hwm);
    let (mut clean_bytes, mut dirty_bytes, mut first_dirty_timestamp, mut lag_end) = (0u64, 0u64, None, hwm);
    for (base, _, iv) in index_range(inner, r, log_start, hwm)? {
        if iv.max_timestamp > newest_cleanable_ms {
            lag_end = base;
            break;
        }
        if base < cleaned_end {
            clean_bytes += iv.bytes as u64;
        } else if base < closed_end {
            dirty_bytes += iv.bytes as u64;
            first_dirty_timestamp.get_or_insert(iv.max_timestamp);
        } else {
            first_dirty_timestamp.get_or_insert(iv.max_timestamp);
        }
    }
    Ok(CompactionView { cleaned_end, pending: pending(inner, group)?, closed_end, lag_end, clean_bytes, dirty_bytes, first_dirty_timestamp })
}
