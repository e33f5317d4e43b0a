//! acks=1: the leader answers a produce once the batch is durable in its own
//! log, with the offset the batch gets if it is committed.
//!
//! Offsets are assigned when entries are applied, in log order, so the offset
//! of an entry not yet applied is the applied state's next offset plus the
//! records of the entries between. The log store keeps that running "log end
//! offset" for the entries it appends; a truncation (a new leader replacing
//! uncommitted entries) invalidates it. If an acks=1 entry is later truncated,
//! the write is lost and its offset reused: exactly Kafka's acks=1 contract.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chronik::raft::engine::LocalAppend;
use chronik::log::batch;
use chronik::{Command, Entry, Offset};
use openraft::entry::RaftEntry;
use openraft::EntryPayload;
use tokio::sync::oneshot;

/// Tokens are unique per process; 0 means "none".
static NEXT_TOKEN: AtomicU64 = AtomicU64::new(1);

#[derive(Default)]
pub(crate) struct LocalAcks {
    waiters: Mutex<HashMap<u64, oneshot::Sender<Offset>>>,
    /// (index of the last entry in the log, the offset after it), while known.
    end: Mutex<Option<(u64, Offset)>>,
}

/// Records an entry adds to its partition once applied (as the state machine
/// counts them), and its acks=1 token. The count is unknown (None) for an
/// idempotent producer's batch: applying it may find a duplicate and add nothing.
pub(crate) fn record_count(e: &Entry) -> Option<(Option<i64>, u64)> {
    match &e.payload {
        EntryPayload::Normal(Command::Append { batch: b, token }) => {
            let n = match batch::parse_header(b) {
                Ok(h) if h.producer_id >= 0 && h.base_sequence >= 0 => None,
                Ok(h) => Some(batch::offsets_taken(&h).unwrap_or(0)),
                Err(_) => Some(0),
            };
            Some((n, *token))
        }
        _ => None,
    }
}

impl LocalAcks {
    pub(crate) fn register(self: &Arc<Self>) -> LocalAppend {
        let token = NEXT_TOKEN.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.waiters.lock().unwrap().insert(token, tx);
        let me = self.clone();
        LocalAppend {
            token,
            offset: rx,
            cancel: Some(Box::new(move || {
                me.waiters.lock().unwrap().remove(&token);
            })),
        }
    }

    /// A truncation makes the cached log end offset meaningless.
    pub(crate) fn invalidate(&self) {
        *self.end.lock().unwrap() = None;
    }

    /// Called with entries about to be appended (contiguous, in order).
    /// `offset_after` computes the log end offset after a given index from
    /// storage when the cache cannot. Returns the waiters to answer once the
    /// entries are durable, with their offsets.
    pub(crate) fn on_append(
        &self,
        entries: &[Entry],
        offset_after: impl FnOnce(Option<u64>) -> Option<Offset>,
    ) -> Vec<(oneshot::Sender<Offset>, Offset)> {
        let Some(first) = entries.first().map(|e| e.index()) else { return vec![] };
        let last = entries.last().map(|e| e.index()).unwrap_or(first);
        let has_waiter = {
            let w = self.waiters.lock().unwrap();
            !w.is_empty() && entries.iter().any(|e| record_count(e).is_some_and(|(_, t)| t != 0 && w.contains_key(&t)))
        };
        let mut end = self.end.lock().unwrap();
        let start = match *end {
            Some((idx, leo)) if idx + 1 == first => Some(leo),
            _ if has_waiter => offset_after(first.checked_sub(1)),
            _ => None,
        };
        let Some(mut leo) = start else {
            *end = None;
            return vec![];
        };
        let mut out = Vec::new();
        let mut waiters = self.waiters.lock().unwrap();
        for e in entries {
            if let Some((n, token)) = record_count(e) {
                if token != 0 {
                    if let Some(tx) = waiters.remove(&token) {
                        out.push((tx, leo));
                    }
                }
                match n {
                    Some(n) => leo += n,
                    None => {
                        // Past an idempotent batch nothing can be said until
                        // it is applied: later waiters stay registered and
                        // their produces wait for commit instead.
                        *end = None;
                        return out;
                    }
                }
            }
        }
        *end = Some((last, leo));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use chronik::TypeConfig;
    use openraft::testing::log_id;

    fn batch(records: i32, producer_id: i64) -> Bytes {
        // A v2 batch header is enough: only the record count, the last
        // offset delta and the producer fields are read.
        let mut b = vec![0u8; 61];
        b[16] = 2; // magic
        b[23..27].copy_from_slice(&(records - 1).to_be_bytes());
        b[43..51].copy_from_slice(&producer_id.to_be_bytes());
        b[53..57].copy_from_slice(&(if producer_id >= 0 { 0i32 } else { -1 }).to_be_bytes());
        b[57..61].copy_from_slice(&records.to_be_bytes());
        Bytes::from(b)
    }

    fn append(index: u64, records: i32, token: u64) -> Entry {
        Entry::new_normal(log_id::<TypeConfig>(1, 1, index), Command::Append { batch: batch(records, -1), token })
    }

    #[test]
    fn nothing_is_promised_past_an_idempotent_batch() {
        let acks = Arc::new(LocalAcks::default());
        let (a, b) = (acks.register(), acks.register());
        let idempotent = Entry::new_normal(log_id::<TypeConfig>(1, 1, 4), Command::Append { batch: batch(2, 7), token: 0 });
        let out = acks.on_append(&[append(3, 4, a.token), idempotent, append(5, 1, b.token)], |_| Some(10));
        // a comes before the idempotent batch; b must wait for commit.
        assert_eq!(out.iter().map(|(_, o)| *o).collect::<Vec<_>>(), vec![10]);
        assert!(acks.waiters.lock().unwrap().contains_key(&b.token));
        let c = acks.register();
        let out = acks.on_append(&[append(6, 1, c.token)], |after| {
            assert_eq!(after, Some(5), "the cached end was dropped");
            None
        });
        assert!(out.is_empty());
    }

    #[test]
    fn offsets_follow_the_log_and_truncation_resets() {
        let acks = Arc::new(LocalAcks::default());
        let a = acks.register();
        let b = acks.register();
        // Entries 1..=2 already in the log hold 5 records after offset 10.
        let out = acks.on_append(&[append(3, 4, a.token), append(4, 2, 0), append(5, 3, b.token)], |after| {
            assert_eq!(after, Some(2));
            Some(15)
        });
        let offsets: Vec<Offset> = out.iter().map(|(_, o)| *o).collect();
        assert_eq!(offsets, vec![15, 21]);
        // Contiguous appends use the cached end without asking storage.
        let c = acks.register();
        let out = acks.on_append(&[append(6, 1, c.token)], |_| panic!("cache should be used"));
        assert_eq!(out[0].1, 24);
        // After a truncation the end is computed again.
        acks.invalidate();
        let d = acks.register();
        let out = acks.on_append(&[append(6, 1, d.token)], |after| {
            assert_eq!(after, Some(5));
            Some(30)
        });
        assert_eq!(out[0].1, 30);
        // A withdrawn registration is not answered.
        let e = acks.register();
        let token = e.token;
        drop(e);
        assert!(acks.on_append(&[append(7, 1, token)], |_| Some(0)).is_empty());
    }
}
