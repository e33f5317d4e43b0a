//! The records inside a batch, walked once on produce to validate them (and
//! off the hot path to find a timestamp). Nothing is copied: keys, values and
//! headers are skipped over, and compressed records are read as a bounded
//! stream (see [`super::compression`]).
//!
//! Record layout (v2): length varint, attributes i8, timestampDelta varlong,
//! offsetDelta varint, keyLength varint, key, valueLength varint, value,
//! headerCount varint, then per header: keyLength varint, key, valueLength
//! varint, value. Lengths of -1 mean null (not allowed for header keys).

use std::io::{self, Read};
use std::ops::ControlFlow;

use super::batch::{BatchError, BatchHeader, HEADER_LEN};
use super::compression::{self, Inflated};

/// What validation needs of one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordInfo {
    /// Position in the batch, from 0.
    pub index: i32,
    pub offset_delta: i32,
    /// Absolute: the batch's base timestamp plus the record's delta.
    pub timestamp: i64,
    /// False when the key is null.
    pub has_key: bool,
}

/// What a walk found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalkSummary {
    pub records: i32,
    /// Largest record timestamp (-1 when none is set).
    pub max_timestamp: i64,
    /// Bytes of the records, after decompression.
    pub records_bytes: usize,
}

/// A byte source: a slice, or a decompressing stream.
trait Source {
    fn byte(&mut self) -> Result<Option<u8>, BatchError>;
    fn skip(&mut self, n: usize) -> Result<(), BatchError>;
    fn position(&self) -> usize;
}

struct Slice<'a> {
    b: &'a [u8],
    at: usize,
}

impl Source for Slice<'_> {
    fn byte(&mut self) -> Result<Option<u8>, BatchError> {
        let b = self.b.get(self.at).copied();
        self.at += b.is_some() as usize;
        Ok(b)
    }
    fn skip(&mut self, n: usize) -> Result<(), BatchError> {
        if self.b.len() - self.at < n {
            return Err(BatchError::MalformedRecord("a length runs past the end of the batch".into()));
        }
        self.at += n;
        Ok(())
    }
    fn position(&self) -> usize {
        self.at
    }
}

struct Stream<'a> {
    r: io::BufReader<Inflated<'a>>,
}

impl Source for Stream<'_> {
    fn byte(&mut self) -> Result<Option<u8>, BatchError> {
        let mut one = [0u8];
        match self.r.read(&mut one) {
            Ok(0) => Ok(None),
            Ok(_) => Ok(Some(one[0])),
            Err(e) => Err(self.r.get_ref().error(&e)),
        }
    }
    fn skip(&mut self, n: usize) -> Result<(), BatchError> {
        match io::copy(&mut (&mut self.r).take(n as u64), &mut io::sink()) {
            Ok(copied) if copied == n as u64 => Ok(()),
            Ok(_) => Err(BatchError::MalformedRecord("a length runs past the end of the decompressed records".into())),
            Err(e) => Err(self.r.get_ref().error(&e)),
        }
    }
    fn position(&self) -> usize {
        self.r.get_ref().bytes_read() - self.r.buffer().len()
    }
}

/// Zig-zag varint of at most `max_bytes` bytes (5 for an int, 10 for a long).
fn varint(s: &mut dyn Source, max_bytes: usize, what: &str) -> Result<Option<i64>, BatchError> {
    let mut raw: u64 = 0;
    for i in 0..max_bytes {
        let Some(b) = s.byte()? else {
            return if i == 0 { Ok(None) } else { Err(BatchError::MalformedRecord(format!("{what} is cut off"))) };
        };
        raw |= ((b & 0x7f) as u64) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(Some(((raw >> 1) as i64) ^ -((raw & 1) as i64)));
        }
    }
    Err(BatchError::MalformedRecord(format!("{what} is a varint longer than {max_bytes} bytes")))
}

fn int(s: &mut dyn Source, what: &str) -> Result<i64, BatchError> {
    varint(s, 5, what)?.ok_or_else(|| BatchError::MalformedRecord(format!("{what} is missing")))
}

/// Skips a length-prefixed field; false when it was null (-1).
fn skip_field(s: &mut dyn Source, what: &str) -> Result<bool, BatchError> {
    match int(s, what)? {
        -1 => Ok(false),
        n if n < 0 => Err(BatchError::MalformedRecord(format!("{what} is {n}"))),
        n => s.skip(n as usize).map(|_| true),
    }
}

fn one_record(s: &mut dyn Source, index: i32, base_timestamp: i64) -> Result<Option<RecordInfo>, BatchError> {
    let Some(len) = varint(s, 5, "record length")? else { return Ok(None) };
    if len < 0 {
        return Err(BatchError::MalformedRecord(format!("record {index} has length {len}")));
    }
    let start = s.position();
    let _attributes = s.byte()?.ok_or_else(|| BatchError::MalformedRecord("record attributes are missing".into()))?;
    let timestamp_delta = varint(s, 10, "timestamp delta")?.ok_or_else(|| BatchError::MalformedRecord("timestamp delta is missing".into()))?;
    let offset_delta = int(s, "offset delta")?;
    let has_key = skip_field(s, "key length")?;
    skip_field(s, "value length")?;
    let headers = int(s, "header count")?;
    if headers < 0 {
        return Err(BatchError::MalformedRecord(format!("record {index} has {headers} headers")));
    }
    for _ in 0..headers {
        if !skip_field(s, "header key length")? {
            return Err(BatchError::MalformedRecord(format!("record {index} has a header with a null key")));
        }
        skip_field(s, "header value length")?;
    }
    let used = s.position() - start;
    if used != len as usize {
        return Err(BatchError::MalformedRecord(format!("record {index} says it is {len} bytes but its fields take {used}")));
    }
    Ok(Some(RecordInfo {
        index,
        offset_delta: offset_delta as i32,
        timestamp: base_timestamp.wrapping_add(timestamp_delta),
        has_key,
    }))
}

/// Walks every record of `batch` (header already parsed), decompressing with
/// at most `decompressed_bytes_max`, and shows each to `visit`. Checks that
/// each record's fields fill exactly its length, and that the records fill
/// the batch. The visitor may stop the walk early.
pub fn walk(
    h: &BatchHeader,
    batch: &[u8],
    decompressed_bytes_max: usize,
    mut visit: impl FnMut(&RecordInfo) -> Result<ControlFlow<()>, BatchError>,
) -> Result<WalkSummary, BatchError> {
    let body = &batch[HEADER_LEN..];
    let mut slice;
    let mut stream;
    let source: &mut dyn Source = if h.compression() == compression::NONE {
        slice = Slice { b: body, at: 0 };
        &mut slice
    } else {
        stream = Stream { r: io::BufReader::with_capacity(16 * 1024, compression::inflate(h.compression(), body, decompressed_bytes_max)?) };
        &mut stream
    };
    let mut summary = WalkSummary { records: 0, max_timestamp: -1, records_bytes: 0 };
    while let Some(r) = one_record(source, summary.records, h.base_timestamp)? {
        summary.records += 1;
        summary.max_timestamp = summary.max_timestamp.max(r.timestamp);
        if visit(&r)?.is_break() {
            break;
        }
    }
    summary.records_bytes = source.position();
    Ok(summary)
}

/// One record of a decompressed batch, as compaction needs it: its bytes
/// (length prefix included, so it can be copied into a new batch as is),
/// offset delta, timestamp, key and whether its value is null.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawRecord<'a> {
    pub bytes: &'a [u8],
    pub offset_delta: i32,
    pub timestamp: i64,
    pub key: Option<&'a [u8]>,
    pub tombstone: bool,
}

/// Splits decompressed records into [`RawRecord`]s, checking each as
/// [`walk`] does.
pub fn split(records: &[u8], base_timestamp: i64) -> Result<Vec<RawRecord<'_>>, BatchError> {
    let mut out = Vec::new();
    let mut s = Slice { b: records, at: 0 };
    while s.at < records.len() {
        let start = s.at;
        let Some(len) = varint(&mut s, 5, "record length")? else { break };
        if len < 0 || len as usize > records.len() - s.at {
            return Err(BatchError::MalformedRecord(format!("record {} has length {len}", out.len())));
        }
        let end = s.at + len as usize;
        let mut r = Slice { b: &records[..end], at: s.at };
        r.skip(1)?;
        let timestamp_delta = varint(&mut r, 10, "timestamp delta")?.ok_or_else(|| BatchError::MalformedRecord("timestamp delta is missing".into()))?;
        let offset_delta = int(&mut r, "offset delta")? as i32;
        let key = match int(&mut r, "key length")? {
            -1 => None,
            n if n < 0 => return Err(BatchError::MalformedRecord(format!("key length {n}"))),
            n => {
                let at = r.at;
                r.skip(n as usize)?;
                Some(&records[at..at + n as usize])
            }
        };
        let tombstone = !skip_field(&mut r, "value length")?;
        let headers = int(&mut r, "header count")?;
        if headers < 0 {
            return Err(BatchError::MalformedRecord(format!("record {} has {headers} headers", out.len())));
        }
        for _ in 0..headers {
            skip_field(&mut r, "header key length")?;
            skip_field(&mut r, "header value length")?;
        }
        if r.at != end {
            return Err(BatchError::MalformedRecord(format!("record {} says it is {len} bytes but its fields take {}", out.len(), r.at - (end - len as usize))));
        }
        out.push(RawRecord { bytes: &records[start..end], offset_delta, timestamp: base_timestamp.wrapping_add(timestamp_delta), key, tombstone });
        s.at = end;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::batch::{self, tests::batch_of, HEADER_LEN};

    fn varint_bytes(v: i64) -> Vec<u8> {
        let mut z = ((v << 1) ^ (v >> 63)) as u64;
        let mut out = vec![];
        loop {
            let b = (z & 0x7f) as u8;
            z >>= 7;
            if z == 0 {
                out.push(b);
                return out;
            }
            out.push(b | 0x80);
        }
    }

    #[test]
    fn walks_keys_timestamps_and_headers() {
        let b = batch_of(&[(Some(b"k".as_slice()), b"v".as_slice(), 5), (None, b"value", 9)], 0);
        let h = batch::parse_header(&b).unwrap();
        let mut seen = vec![];
        let s = walk(&h, &b, 1 << 20, |r| {
            seen.push(*r);
            Ok(ControlFlow::Continue(()))
        })
        .unwrap();
        assert_eq!(s.records, 2);
        assert_eq!(s.max_timestamp, 1009);
        assert_eq!(s.records_bytes, b.len() - HEADER_LEN);
        assert_eq!(seen[0], RecordInfo { index: 0, offset_delta: 0, timestamp: 1005, has_key: true });
        assert_eq!(seen[1], RecordInfo { index: 1, offset_delta: 1, timestamp: 1009, has_key: false });
    }

    #[test]
    fn split_gives_each_record_with_its_key_and_bytes() {
        let b = batch_of(&[(Some(b"key".as_slice()), b"v".as_slice(), 5), (None, b"value", 9)], 0);
        let recs = split(&b[HEADER_LEN..], 1000).unwrap();
        assert_eq!(recs.len(), 2);
        assert_eq!((recs[0].key, recs[0].offset_delta, recs[0].timestamp, recs[0].tombstone), (Some(&b"key"[..]), 0, 1005, false));
        assert_eq!((recs[1].key, recs[1].offset_delta, recs[1].timestamp), (None, 1, 1009));
        assert_eq!([recs[0].bytes, recs[1].bytes].concat(), &b[HEADER_LEN..], "the records' bytes are the batch's");
        assert!(matches!(split(&b[HEADER_LEN..b.len() - 1], 0), Err(BatchError::MalformedRecord(_))));
    }

    #[test]
    fn a_record_whose_length_lies_is_malformed() {
        // length 20, but the fields take 6 bytes
        let mut body = varint_bytes(20);
        body.extend_from_slice(&[0, 0, 0, 1, 1, 0]);
        body.extend_from_slice(&[0u8; 14]);
        let mut b = vec![0u8; HEADER_LEN];
        b.extend_from_slice(&body);
        let h = batch::parse_header(&b).unwrap();
        let err = walk(&h, &b, 1 << 20, |_| Ok(ControlFlow::Continue(()))).unwrap_err();
        assert!(matches!(err, BatchError::MalformedRecord(_)), "{err:?}");
    }

    #[test]
    fn header_count_bombs_end_at_the_data() {
        // a record that claims 2^31-1 headers and has none
        let mut rec = vec![0u8, 0, 0, 1, 1];
        rec.extend(varint_bytes(i32::MAX as i64));
        let mut body = varint_bytes(rec.len() as i64);
        body.extend(rec);
        let mut b = vec![0u8; HEADER_LEN];
        b.extend(body);
        let h = batch::parse_header(&b).unwrap();
        assert!(matches!(walk(&h, &b, 1 << 20, |_| Ok(ControlFlow::Continue(()))), Err(BatchError::MalformedRecord(_))));
    }
}
