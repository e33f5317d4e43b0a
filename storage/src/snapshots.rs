//! Segments, checkpoints and snapshots of a partition: how its Raft log is
//! purged.
//!
//! A partition's Raft log holds its records, so its snapshot cannot be the
//! state as of now: a follower installing that would lack every retained
//! batch below it. Instead each replica closes a *segment* of its log after
//! `segment.bytes` or `segment.ms` and writes a *checkpoint* there: the
//! partition's state at that log index (next offset, log start, membership,
//! producers, epochs, consumer groups) without records. Once the log start
//! has passed a checkpoint's next offset, nothing retained lies at or before
//! its index: it becomes the snapshot and openraft purges the log up to it.
//! A follower that needs entries the leader has purged installs that
//! snapshot and then gets the retained records by ordinary appends, replayed
//! exactly as the leader applied them (Redpanda's model).
//!
//! Offsets partitions keep no records, only keyed state: every checkpoint of
//! theirs qualifies at once. Checkpoints are each replica's own; so are its
//! snapshot and purge.

use std::collections::BTreeMap;
use std::io;
use std::sync::atomic::Ordering;

use chronik::log::retention::SegmentRule;
use chronik::{Entry, Offset, SnapshotMeta};
use openraft::EntryPayload;
use tracing::{error, info};

use crate::log_store::{decode, encode, io_err};
use crate::state_machine::{Kind, PartitionReader, SledStateMachine, SmState, SnapshotBody};
use crate::{keys, Inner};

/// No snapshot (or no candidate) yet, in the reader's atomics.
pub(crate) const NONE: i64 = -1;

/// The open segment of a replica's log and its closed ones' checkpoints.
pub(crate) struct Segments {
    /// Checkpoints not yet made the snapshot: log index -> next offset there.
    checkpoints: BTreeMap<u64, Offset>,
    /// Bytes applied since the open segment began, and when it began.
    bytes: u64,
    opened_ms: i64,
    /// The apply under way moved the log start.
    pub(crate) trimmed: bool,
}

impl Segments {
    pub(crate) fn load(inner: &Inner, group: chronik::GroupId) -> io::Result<Self> {
        let mut checkpoints = BTreeMap::new();
        for k in inner.sm.tree.scan_prefix(keys::tag(group, keys::CHECKPOINT)).keys() {
            let k = k.map_err(io_err)?;
            let (index, next) = keys::parse_checkpoint(&k).ok_or_else(|| io_err(format!("group {group} has a malformed checkpoint key")))?;
            checkpoints.insert(index, next);
        }
        Ok(Self { checkpoints, bytes: 0, opened_ms: crate::now_ms(), trimmed: false })
    }

    /// The next offset at the newest checkpoint: where the closed segments end.
    pub(crate) fn closed_end(&self) -> Option<Offset> {
        self.checkpoints.values().next_back().copied()
    }

    /// The newest checkpoint wholly below `log_start`.
    fn candidate(&self, log_start: Offset) -> Option<u64> {
        self.checkpoints.iter().rev().find(|(_, next)| **next <= log_start).map(|(i, _)| *i)
    }
}

/// What an applied entry adds to its segment.
pub(crate) fn weight(entry: &Entry) -> u64 {
    match &entry.payload {
        EntryPayload::Normal(chronik::Command::Append { batch, .. }) => batch.len() as u64,
        EntryPayload::Normal(chronik::Command::Group(c)) => encode(c).map(|v| v.len() as u64).unwrap_or(64),
        _ => 0,
    }
}

impl SledStateMachine {
    /// After an apply has landed: closes the open segment if it is due, or
    /// if retention has just emptied the log, and says whether a snapshot
    /// can now be built.
    pub(crate) fn after_apply(&mut self, applied_bytes: u64) -> io::Result<()> {
        let Kind::Partition(reader) = &self.kind else { return Ok(()) };
        let reader = reader.clone();
        let rule: SegmentRule = *reader.segment.lock().unwrap();
        let now = crate::now_ms();
        let seg = &mut self.segments;
        seg.bytes += applied_bytes;
        let drained = std::mem::take(&mut seg.trimmed) && self.state.next_offset <= self.state.log_start_offset;
        let newest = seg.checkpoints.keys().next_back().map(|i| *i as i64).unwrap_or(NONE).max(reader.snapshot_index.load(Ordering::Acquire));
        let fresh = self.state.last_applied.is_some_and(|l| l.index as i64 > newest);
        if fresh && (rule.rolls(seg.bytes, now - seg.opened_ms) || drained) {
            self.write_checkpoint()?;
            self.segments.bytes = 0;
            self.segments.opened_ms = now;
        }
        let candidate = self.segments.candidate(self.state.log_start_offset).map(|i| i as i64).unwrap_or(NONE);
        reader.purge_candidate.store(candidate, Ordering::Release);
        Ok(())
    }

    /// The state as applied now, with its keyed records: exact, since
    /// nothing is applied while `&mut self` is held and every apply's writes
    /// have landed.
    fn current_snapshot(&self) -> io::Result<(SnapshotMeta, Vec<u8>)> {
        let records = Self::keyed_records(&self.inner, self.group)?;
        let data = encode(&SnapshotBody { state: self.state.clone(), records })?;
        let meta = SnapshotMeta { last_log_id: self.state.last_applied, last_membership: self.state.membership.clone() };
        Ok((meta, data))
    }

    fn write_checkpoint(&mut self) -> io::Result<()> {
        let Some(at) = self.state.last_applied else { return Ok(()) };
        let (meta, data) = self.current_snapshot()?;
        let mut w = self.inner.sm.writes();
        w.insert(&keys::checkpoint(self.group, at.index, self.state.next_offset), &encode(&(&meta, &data))?)?;
        crate::off_runtime(|| w.commit())?;
        self.segments.checkpoints.insert(at.index, self.state.next_offset);
        if let Kind::Partition(r) = &self.kind {
            r.closed_end.fetch_max(self.state.next_offset, Ordering::AcqRel);
        }
        info!(node_id = self.inner.node, group = %self.group, index = at.index, next_offset = self.state.next_offset,
            log_start = self.state.log_start_offset, bytes = data.len(), "segment closed; checkpoint written");
        Ok(())
    }

    /// The snapshot to build now. A partition's is its newest checkpoint
    /// below the log start (which then replaces the current snapshot); None
    /// if there is none newer than the current one, unless `force`, when the
    /// current one is returned again. The controller's is its state now.
    pub(crate) fn snapshot_to_build(&mut self, force: bool) -> io::Result<Option<(SnapshotMeta, Vec<u8>)>> {
        let Kind::Partition(reader) = &self.kind else {
            let built = self.current_snapshot()?;
            self.store_snapshot(&built)?;
            return Ok(Some(built));
        };
        let reader = reader.clone();
        let current = reader.snapshot_index.load(Ordering::Acquire);
        match self.segments.candidate(self.state.log_start_offset).filter(|c| *c as i64 > current) {
            Some(index) => self.promote(&reader, index).map(Some),
            None if !force => Ok(None),
            // Nothing retained: the state now is a snapshot of all of it.
            None if self.state.next_offset <= self.state.log_start_offset => {
                let built = self.current_snapshot()?;
                self.store_snapshot(&built)?;
                reader.snapshot_index.store(built.0.last_log_id.map(|l| l.index as i64).unwrap_or(NONE), Ordering::Release);
                Ok(Some(built))
            }
            None => match self.stored_snapshot()? {
                Some(s) => Ok(Some(s)),
                // Openraft forces a build only when the log was purged
                // without a snapshot, which this store never does.
                None => {
                    error!(node_id = self.inner.node, group = %self.group, "a snapshot is demanded but no checkpoint lies below the log start; offering an empty one");
                    let meta = SnapshotMeta::default();
                    Ok(Some((meta, encode(&SnapshotBody { state: SmState::default(), records: vec![] })?)))
                }
            },
        }
    }

    /// Makes checkpoint `index` the current snapshot and drops it and the
    /// older ones.
    fn promote(&mut self, reader: &PartitionReader, index: u64) -> io::Result<(SnapshotMeta, Vec<u8>)> {
        let next = self.segments.checkpoints[&index];
        let key = keys::checkpoint(self.group, index, next);
        let stored = self.inner.sm.get(&key)?.ok_or_else(|| io_err(format!("group {} lost checkpoint {index}", self.group)))?;
        let (meta, data): (SnapshotMeta, Vec<u8>) = decode(&stored)?;
        let older: Vec<(u64, Offset)> = self.segments.checkpoints.range(..=index).map(|(i, n)| (*i, *n)).collect();
        let mut w = self.inner.sm.writes();
        w.insert(&keys::tag(self.group, keys::SNAPSHOT), &stored)?;
        for (i, n) in &older {
            w.remove(&keys::checkpoint(self.group, *i, *n))?;
        }
        crate::off_runtime(|| w.commit())?;
        for (i, _) in older {
            self.segments.checkpoints.remove(&i);
        }
        reader.snapshot_index.store(index as i64, Ordering::Release);
        let candidate = self.segments.candidate(self.state.log_start_offset).map(|i| i as i64).unwrap_or(NONE);
        reader.purge_candidate.store(candidate, Ordering::Release);
        info!(node_id = self.inner.node, group = %self.group, index, next_offset = next, log_start = self.state.log_start_offset,
            bytes = data.len(), "checkpoint is now the snapshot; the Raft log up to it can be purged");
        Ok((meta, data))
    }

    fn store_snapshot(&self, (meta, data): &(SnapshotMeta, Vec<u8>)) -> io::Result<()> {
        let mut w = self.inner.sm.writes();
        w.insert(&keys::tag(self.group, keys::SNAPSHOT), &encode(&(meta, data))?)?;
        w.commit()
    }

    pub(crate) fn stored_snapshot(&self) -> io::Result<Option<(SnapshotMeta, Vec<u8>)>> {
        match self.inner.sm.get(&keys::tag(self.group, keys::SNAPSHOT))? {
            Some(v) => decode(&v).map(Some),
            None => Ok(None),
        }
    }

    /// Replaces this replica's state with a snapshot from the leader. A
    /// partition's carries no records: its index starts empty, the log start
    /// moves up to the snapshot's next offset, and the retained records come
    /// after it as appends.
    pub(crate) fn install(&mut self, meta: &SnapshotMeta, data: Vec<u8>) -> io::Result<()> {
        let SnapshotBody { mut state, records } = SnapshotBody::decode(&data)?;
        state.last_applied = meta.last_log_id;
        state.membership = meta.last_membership.clone();
        state.log_start_offset = state.log_start_offset.max(state.next_offset);
        info!(node_id = self.inner.node, group = %self.group, last = ?meta.last_log_id, next_offset = state.next_offset, bytes = data.len(), "installing snapshot");
        self.state = state;
        let inner = self.inner.clone();
        let mut w = inner.sm.writes();
        // Everything derived from this replica's own log goes: it is
        // replaced. (A compaction job recorded before the snapshot covered
        // only offsets below its log start.)
        let _rewriting = inner.rewrite.lock().unwrap();
        for tag in keys::SNAPSHOT_TAGS.into_iter().chain([keys::INDEX, keys::TIME, keys::CHECKPOINT, keys::COMPACTION, keys::CLEANED]) {
            for k in self.inner.sm.tree.scan_prefix(keys::tag(self.group, tag)).keys() {
                w.remove(&k.map_err(io_err)?)?;
            }
        }
        for (tag, suffix, value) in records {
            w.insert(&keys::tagged(self.group, tag, &suffix), &value)?;
        }
        if let Kind::Partition(r) = &self.kind {
            r.closed_end.fetch_max(self.state.next_offset, Ordering::AcqRel);
            r.retained.store(0, Ordering::Release);
            r.snapshot_index.store(meta.last_log_id.map(|l| l.index as i64).unwrap_or(NONE), Ordering::Release);
            r.purge_candidate.store(NONE, Ordering::Release);
        }
        self.segments = Segments { checkpoints: BTreeMap::new(), bytes: 0, opened_ms: crate::now_ms(), trimmed: false };
        self.reset_time_index();
        self.persist_state(&mut w)?;
        w.insert(&keys::tag(self.group, keys::SNAPSHOT), &encode(&(meta, &data))?)?;
        crate::off_runtime(|| w.commit())?;
        self.load_keyed_state()?;
        self.publish();
        Ok(())
    }
}
