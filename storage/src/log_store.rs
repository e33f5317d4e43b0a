//! The Raft log of one group.

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use chronik::{Entry, GroupId, LogId, TypeConfig};
use openraft::alias::VoteOf;
use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::OptionalSend;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::local_ack::{self, LocalAcks};
use crate::state_machine::SledStateMachine;
use crate::{keys, Inner};

#[derive(Clone)]
pub struct SledLog {
    inner: Arc<Inner>,
    group: GroupId,
    /// Partition groups: acks=1 waiters (see `local_ack`).
    local_acks: Option<Arc<LocalAcks>>,
}

pub(crate) fn io_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

pub(crate) fn encode<T: Serialize>(v: &T) -> io::Result<Vec<u8>> {
    bincode::serialize(v).map_err(io_err)
}

pub(crate) fn decode<T: DeserializeOwned>(b: &[u8]) -> io::Result<T> {
    bincode::deserialize(b).map_err(io_err)
}

impl SledLog {
    pub(crate) fn new(inner: Arc<Inner>, group: GroupId, local_acks: Option<Arc<LocalAcks>>) -> Self {
        Self { inner, group, local_acks }
    }

    /// The offset after log entry `index` (None: before the first entry),
    /// counting from the applied state; None when `index` is already applied
    /// past (then nothing can be said cheaply).
    fn offset_after(&self, index: Option<u64>) -> Option<chronik::Offset> {
        let (applied, next) = SledStateMachine::applied_end(&self.inner, self.group).ok()?;
        let Some(index) = index else { return applied.is_none().then_some(next) };
        if applied.is_some_and(|a| a > index) {
            return None;
        }
        let from = applied.map(|a| a + 1).unwrap_or(0);
        let mut leo = next;
        if from <= index {
            for e in self.entries(keys::log(self.group, from), keys::log(self.group, index)) {
                if let Some((n, _)) = local_ack::record_count(&e.ok()?) {
                    leo += n?;
                }
            }
        }
        Some(leo)
    }

    /// The entries with keys in `from..=to`.
    fn entries(&self, from: [u8; 16], to: [u8; 16]) -> impl Iterator<Item = io::Result<Entry>> + '_ {
        self.inner.log.tree.range(from..=to).map(|kv| {
            let (k, v) = kv.map_err(io_err)?;
            decode(&self.inner.log.resolve(&k, v)?)
        })
    }

    fn get_meta<T: DeserializeOwned>(&self, tag: u8) -> io::Result<Option<T>> {
        match self.inner.meta.get(keys::tag(self.group, tag)).map_err(io_err)? {
            Some(v) => Ok(Some(decode(&v)?)),
            None => Ok(None),
        }
    }

    fn put_meta<T: Serialize>(&self, tag: u8, v: &T) -> io::Result<()> {
        self.inner.meta.insert(keys::tag(self.group, tag), encode(v)?).map_err(io_err)?;
        Ok(())
    }

    fn key_range(&self, range: impl RangeBounds<u64>) -> ([u8; 16], [u8; 16]) {
        let start = match range.start_bound() {
            Bound::Included(i) => *i,
            Bound::Excluded(i) => i.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(i) => keys::log(self.group, *i),
            Bound::Excluded(i) => {
                if *i == 0 {
                    return (keys::log(self.group, 0), keys::log(self.group, 0));
                }
                keys::log(self.group, i - 1)
            }
            Bound::Unbounded => keys::log(self.group, u64::MAX),
        };
        (keys::log(self.group, start), end)
    }

    /// Removes entries with index in `range` (inclusive key bounds).
    fn remove_range(&self, from: [u8; 16], to: [u8; 16]) -> io::Result<()> {
        // A purge can span many entries: off the async workers.
        crate::off_runtime(|| {
            let _rewriting = self.inner.rewrite.lock().unwrap();
            let mut w = self.inner.log.writes();
            w.remove_range(&from, &to)?;
            w.commit()
        })
    }
}

impl RaftLogReader<TypeConfig> for SledLog {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        let (from, to) = self.key_range(range.clone());
        if from > to || (matches!(range.end_bound(), Bound::Excluded(0))) {
            return Ok(vec![]);
        }
        let entries: Vec<Entry> = self.entries(from, to).collect::<io::Result<_>>()?;
        // A hole in the log would let Raft replicate or apply around it.
        if let Some(w) = entries.windows(2).find(|w| w[1].index() != w[0].index() + 1) {
            return Err(io_err(format!("group {} on node {}: log entry after {} is {}", self.group, self.inner.node, w[0].index(), w[1].index())));
        }
        Ok(entries)
    }

    async fn read_vote(&mut self) -> Result<Option<VoteOf<TypeConfig>>, io::Error> {
        self.get_meta(keys::VOTE)
    }
}

impl RaftLogStorage<TypeConfig> for SledLog {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let last_purged: Option<LogId> = self.get_meta(keys::PURGED)?;
        let last = match self.inner.log.tree.scan_prefix(keys::group(self.group)).next_back() {
            Some(kv) => {
                let (k, v) = kv.map_err(io_err)?;
                let e: Entry = decode(&self.inner.log.resolve(&k, v)?)?;
                Some(e.log_id())
            }
            None => last_purged,
        };
        Ok(LogState { last_purged_log_id: last_purged, last_log_id: last })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    /// Durable before it returns: a vote must never be forgotten.
    async fn save_vote(&mut self, vote: &VoteOf<TypeConfig>) -> Result<(), io::Error> {
        self.put_meta(keys::VOTE, vote)?;
        self.inner.flusher.flush().await
    }

    /// Not flushed on its own: it rides along with the next flush, and a lost
    /// committed index only means re-discovering it from the leader.
    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        self.put_meta(keys::COMMITTED, &committed)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        Ok(self.get_meta::<Option<LogId>>(keys::COMMITTED)?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<TypeConfig>) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        let acks = match &self.local_acks {
            Some(l) => l.on_append(&entries, |i| self.offset_after(i)),
            None => vec![],
        };
        let mut w = self.inner.log.writes();
        for e in &entries {
            w.insert(&keys::log(self.group, e.index()), &encode(e)?)?;
        }
        w.commit()?;
        self.inner.flusher.after_flush(callback);
        if !acks.is_empty() {
            // Queued after the callback above: the flush that answers this
            // covers these entries too.
            let inner = self.inner.clone();
            tokio::spawn(async move {
                if inner.flusher.flush().await.is_ok() {
                    for (tx, offset) in acks {
                        let _ = tx.send(offset);
                    }
                }
            });
        }
        Ok(())
    }

    async fn truncate_after(&mut self, last: Option<LogId>) -> Result<(), io::Error> {
        if let Some(l) = &self.local_acks {
            l.invalidate();
        }
        let from = last.map(|l| l.index + 1).unwrap_or(0);
        self.remove_range(keys::log(self.group, from), keys::log(self.group, u64::MAX))
    }

    async fn purge(&mut self, upto: LogId) -> Result<(), io::Error> {
        self.put_meta(keys::PURGED, &upto)?;
        self.remove_range(keys::log(self.group, 0), keys::log(self.group, upto.index))
    }
}
