//! A partition's time index, as Kafka keeps one per segment: an entry
//! (g ++ b't' ++ timestamp -> base offset) wherever a batch's newest
//! timestamp exceeds every earlier batch's, so the entries grow with both
//! key and value. The first entry at or after a timestamp names the first
//! batch that may hold a record that new; no batch before it does. ListOffsets
//! by timestamp reads from there instead of scanning the whole index.
//!
//! Trims drop the entries below the log start but the last one (it bounds
//! the timestamps before the log start, so a lookup landing on it scans
//! from the log start). Compaction may lower a batch's newest timestamp or
//! unindex it: the lookup scans forward until a batch qualifies.

use std::io;

use chronik::{GroupId, Offset};

use crate::chunked::{Chunked, Writes};
use crate::log_store::io_err;
use crate::{keys, Inner};

fn key(g: GroupId, timestamp: i64) -> Vec<u8> {
    // Sign bit flipped: big-endian bytes then sort as the numbers do.
    keys::tagged(g, keys::TIME, &((timestamp as u64) ^ (1 << 63)).to_be_bytes())
}

fn parse(k: &[u8], v: &[u8]) -> io::Result<(i64, Offset)> {
    let ts = u64::from_be_bytes(k.get(9..17).and_then(|b| b.try_into().ok()).ok_or_else(|| io_err("malformed time index key"))?) ^ (1 << 63);
    let base = i64::from_be_bytes(Chunked::inline(v)?.try_into().map_err(io_err)?);
    Ok((ts as i64, base))
}

/// The newest timestamp the index holds (None: empty).
pub(crate) fn newest(inner: &Inner, g: GroupId) -> io::Result<Option<i64>> {
    match inner.sm.tree.scan_prefix(keys::tag(g, keys::TIME)).next_back() {
        Some(kv) => {
            let (k, v) = kv.map_err(io_err)?;
            parse(&k, &v).map(|(ts, _)| Some(ts))
        }
        None => Ok(None),
    }
}

/// Records a batch at `base` whose newest timestamp is `timestamp`, if it
/// is newer than every earlier one (`newest`, kept up to date).
pub(crate) fn note(w: &mut Writes, g: GroupId, newest: &mut Option<i64>, timestamp: i64, base: Offset) {
    if newest.is_none_or(|n| timestamp > n) {
        w.insert_small(&key(g, timestamp), &base.to_be_bytes());
        *newest = Some(timestamp);
    }
}

/// The offset from which to look for the first batch with a timestamp at
/// or after `timestamp` (None: no batch has one).
pub(crate) fn lookup(inner: &Inner, g: GroupId, timestamp: i64) -> io::Result<Option<Offset>> {
    let end = keys::tag(g, keys::TIME + 1);
    match inner.sm.tree.range(key(g, timestamp)..end.to_vec()).next() {
        Some(kv) => {
            let (k, v) = kv.map_err(io_err)?;
            parse(&k, &v).map(|(_, base)| Some(base))
        }
        None => Ok(None),
    }
}

/// Drops the entries of batches wholly below `log_start`, but the last.
pub(crate) fn trim(inner: &Inner, w: &mut Writes, g: GroupId, log_start: Offset) -> io::Result<()> {
    let mut below = Vec::new();
    for kv in inner.sm.tree.scan_prefix(keys::tag(g, keys::TIME)) {
        let (k, v) = kv.map_err(io_err)?;
        if parse(&k, &v)?.1 >= log_start {
            break;
        }
        below.push(k);
    }
    below.pop();
    for k in below {
        w.remove_small(&k);
    }
    Ok(())
}

/// Builds the time index of a partition written before it existed, from
/// its offset index (once, when the partition is opened).
pub(crate) fn build(inner: &Inner, g: GroupId, entries: impl Iterator<Item = io::Result<(Offset, i64)>>) -> io::Result<u64> {
    let mut w = inner.sm.writes();
    let (mut newest, mut n) = (None, 0u64);
    for e in entries {
        let (base, ts) = e?;
        let before = newest;
        note(&mut w, g, &mut newest, ts, base);
        n += (before != newest) as u64;
    }
    w.commit()?;
    Ok(n)
}
