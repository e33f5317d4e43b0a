//! Idempotent producers: the per-partition state that lets a partition store
//! a retried batch once and refuse a gap. Every replica applies the same rules
//! to the same log, so the state is the same on all of them and survives a
//! leader change; the state machine persists it with the offsets it assigns.
//!
//! The rules are Kafka's (ProducerStateManager): within an epoch, a batch's
//! first sequence must follow the last stored one; a batch equal to one of the
//! last five stored is a duplicate and gets its original offset; a new epoch
//! starts at sequence 0; an older epoch is fenced. A producer the partition
//! has never seen may start at any sequence.

use std::collections::VecDeque;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Offset;

/// Why a partition refused an idempotent producer's batch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProducerRefusal {
    /// The batch does not follow the last one stored (a gap or a reorder).
    OutOfOrderSequence { producer_id: i64, expected: i32, got: i32 },
    /// A newer epoch of this producer id has written here (fenced).
    StaleEpoch { producer_id: i64, current: i16, got: i16 },
}

impl fmt::Display for ProducerRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProducerRefusal::OutOfOrderSequence { producer_id, expected, got } => {
                write!(f, "producer {producer_id}: expected sequence {expected}, got {got}")
            }
            ProducerRefusal::StaleEpoch { producer_id, current, got } => {
                write!(f, "producer {producer_id}: epoch {got} is older than the current epoch {current}")
            }
        }
    }
}

/// Batches remembered per producer for duplicate detection (Kafka's
/// max.in.flight.requests.per.connection limit for idempotence).
pub const BATCHES_REMEMBERED: usize = 5;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredBatch {
    pub first_seq: i32,
    pub last_seq: i32,
    pub base_offset: Offset,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerState {
    pub epoch: i16,
    /// Oldest first.
    pub batches: VecDeque<StoredBatch>,
    pub last_timestamp_ms: i64,
}

/// What to do with an idempotent batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Append,
    Duplicate(Offset),
    Refuse(ProducerRefusal),
}

/// The sequence after `seq` (sequences wrap from i32::MAX to 0).
pub fn next_seq(seq: i32) -> i32 {
    if seq == i32::MAX { 0 } else { seq + 1 }
}

/// The last sequence of a batch of `records` starting at `first`.
pub fn last_seq(first: i32, records: i32) -> i32 {
    ((first as i64 + records as i64 - 1) % (i32::MAX as i64 + 1)) as i32
}

/// Judges a batch of producer `pid` against its stored state (None: unknown here).
pub fn judge(state: Option<&ProducerState>, pid: i64, epoch: i16, first: i32, last: i32) -> Verdict {
    let Some(s) = state else { return Verdict::Append };
    if epoch < s.epoch {
        return Verdict::Refuse(ProducerRefusal::StaleEpoch { producer_id: pid, current: s.epoch, got: epoch });
    }
    if epoch > s.epoch {
        return if first == 0 {
            Verdict::Append
        } else {
            Verdict::Refuse(ProducerRefusal::OutOfOrderSequence { producer_id: pid, expected: 0, got: first })
        };
    }
    if let Some(b) = s.batches.iter().find(|b| b.first_seq == first && b.last_seq == last) {
        return Verdict::Duplicate(b.base_offset);
    }
    match s.batches.back() {
        Some(b) if next_seq(b.last_seq) != first => {
            Verdict::Refuse(ProducerRefusal::OutOfOrderSequence { producer_id: pid, expected: next_seq(b.last_seq), got: first })
        }
        _ => Verdict::Append,
    }
}

impl ProducerState {
    /// Records an appended batch (after [`judge`] said Append).
    pub fn record(&mut self, epoch: i16, batch: StoredBatch, timestamp_ms: i64) {
        if epoch != self.epoch {
            self.epoch = epoch;
            self.batches.clear();
        }
        if self.batches.len() == BATCHES_REMEMBERED {
            self.batches.pop_front();
        }
        self.batches.push_back(batch);
        self.last_timestamp_ms = timestamp_ms;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(epoch: i16, seqs: &[(i32, i32, Offset)]) -> ProducerState {
        let mut s = ProducerState { epoch, ..Default::default() };
        for (f, l, o) in seqs {
            s.record(epoch, StoredBatch { first_seq: *f, last_seq: *l, base_offset: *o }, 0);
        }
        s
    }

    #[test]
    fn in_order_batches_append_and_retries_are_duplicates() {
        let s = stored(0, &[(0, 4, 100), (5, 9, 105)]);
        assert_eq!(judge(Some(&s), 1, 0, 10, 12), Verdict::Append);
        assert_eq!(judge(Some(&s), 1, 0, 0, 4), Verdict::Duplicate(100));
        assert_eq!(judge(Some(&s), 1, 0, 5, 9), Verdict::Duplicate(105));
    }

    #[test]
    fn gaps_and_stale_epochs_are_refused() {
        let s = stored(2, &[(0, 4, 100)]);
        assert!(matches!(judge(Some(&s), 1, 2, 6, 7), Verdict::Refuse(ProducerRefusal::OutOfOrderSequence { expected: 5, got: 6, .. })));
        assert!(matches!(judge(Some(&s), 1, 1, 5, 6), Verdict::Refuse(ProducerRefusal::StaleEpoch { current: 2, got: 1, .. })));
        // A new epoch starts at 0, and only at 0.
        assert_eq!(judge(Some(&s), 1, 3, 0, 0), Verdict::Append);
        assert!(matches!(judge(Some(&s), 1, 3, 5, 5), Verdict::Refuse(ProducerRefusal::OutOfOrderSequence { expected: 0, .. })));
        // An unknown producer may start anywhere.
        assert_eq!(judge(None, 1, 0, 77, 80), Verdict::Append);
    }

    #[test]
    fn only_the_last_five_batches_are_remembered_and_sequences_wrap() {
        let s = stored(0, &[(0, 0, 0), (1, 1, 1), (2, 2, 2), (3, 3, 3), (4, 4, 4), (5, 5, 5)]);
        assert_eq!(s.batches.len(), BATCHES_REMEMBERED);
        assert!(matches!(judge(Some(&s), 1, 0, 0, 0), Verdict::Refuse(_)));
        assert_eq!(last_seq(i32::MAX - 1, 3), 0);
        let s = stored(0, &[(i32::MAX - 1, i32::MAX, 10)]);
        assert_eq!(judge(Some(&s), 1, 0, 0, 3), Verdict::Append);
    }
}
