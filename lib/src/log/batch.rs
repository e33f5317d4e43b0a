//! The Kafka record batch (magic v2) header: validated on produce, patched on
//! fetch, never decompressed on the hot path.
//!
//! Layout (big endian): baseOffset i64 @0, batchLength i32 @8,
//! partitionLeaderEpoch i32 @12, magic i8 @16, crc u32 @17 (CRC-32C of bytes
//! 21..), attributes i16 @21, lastOffsetDelta i32 @23, baseTimestamp i64 @27,
//! maxTimestamp i64 @35, producerId i64 @43, producerEpoch i16 @51,
//! baseSequence i32 @53, recordCount i32 @57, records @61.
//! baseOffset and partitionLeaderEpoch lie outside the CRC, so the broker may
//! rewrite them without touching the payload.

use bytes::{Bytes, BytesMut};

pub const HEADER_LEN: usize = 61;
const CRC_START: usize = 21;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub batch_length: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
}

impl BatchHeader {
    pub fn compression(&self) -> i16 {
        self.attributes & 0x07
    }
    pub fn is_transactional(&self) -> bool {
        self.attributes & 0x10 != 0
    }
    pub fn is_control(&self) -> bool {
        self.attributes & 0x20 != 0
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("record batch is {0} bytes, shorter than the 61-byte header")]
    TooShort(usize),
    #[error("record batch magic is {0}; only magic 2 (Kafka 0.11+) is supported")]
    UnsupportedMagic(i8),
    #[error("batchLength {declared} does not match the {actual} bytes sent")]
    LengthMismatch { declared: i64, actual: usize },
    #[error("CRC mismatch: header says {expected:#010x}, payload hashes to {actual:#010x}")]
    Crc { expected: u32, actual: u32 },
    #[error("record count {count} with lastOffsetDelta {last_offset_delta} is not a valid batch")]
    BadCount { count: i32, last_offset_delta: i32 },
    #[error("uncompressed batch declares {declared} records but holds {actual}")]
    RecordCountMismatch { declared: i32, actual: usize },
    #[error("produce requests must carry exactly one record batch per partition, got more")]
    MultipleBatches,
}

impl BatchError {
    /// CRC and framing errors mean the bytes are damaged (CORRUPT_MESSAGE);
    /// the rest are well-formed but unacceptable (INVALID_RECORD).
    pub fn is_corruption(&self) -> bool {
        matches!(self, BatchError::TooShort(_) | BatchError::LengthMismatch { .. } | BatchError::Crc { .. })
    }
}

fn i16_at(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes(b[at..at + 2].try_into().unwrap())
}
fn i32_at(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}
fn i64_at(b: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(b[at..at + 8].try_into().unwrap())
}

/// Reads the header of a batch without checking anything but its length.
pub fn parse_header(b: &[u8]) -> Result<BatchHeader, BatchError> {
    if b.len() < HEADER_LEN {
        return Err(BatchError::TooShort(b.len()));
    }
    Ok(BatchHeader {
        batch_length: i32_at(b, 8),
        magic: b[16] as i8,
        crc: u32::from_be_bytes(b[17..21].try_into().unwrap()),
        attributes: i16_at(b, 21),
        last_offset_delta: i32_at(b, 23),
        base_timestamp: i64_at(b, 27),
        max_timestamp: i64_at(b, 35),
        producer_id: i64_at(b, 43),
        producer_epoch: i16_at(b, 51),
        base_sequence: i32_at(b, 53),
        record_count: i32_at(b, 57),
    })
}

/// Validates the `records` field of one produce partition: exactly one magic-2
/// batch, whose length, CRC-32C and record count are consistent. Uncompressed
/// batches have their records walked and counted; compressed ones are not
/// decompressed.
pub fn validate_produce(b: &[u8]) -> Result<BatchHeader, BatchError> {
    let h = parse_header(b)?;
    if h.magic != 2 {
        return Err(BatchError::UnsupportedMagic(h.magic));
    }
    let total = h.batch_length as i64 + 12;
    if total < HEADER_LEN as i64 || total > b.len() as i64 {
        return Err(BatchError::LengthMismatch { declared: h.batch_length as i64, actual: b.len() });
    }
    if (total as usize) < b.len() {
        return Err(BatchError::MultipleBatches);
    }
    let actual = crc32c::crc32c(&b[CRC_START..]);
    if actual != h.crc {
        return Err(BatchError::Crc { expected: h.crc, actual });
    }
    if h.record_count < 1 || h.last_offset_delta != h.record_count - 1 {
        return Err(BatchError::BadCount { count: h.record_count, last_offset_delta: h.last_offset_delta });
    }
    if h.compression() == 0 {
        let actual = count_records(&b[HEADER_LEN..]);
        if actual != Some(h.record_count as usize) {
            return Err(BatchError::RecordCountMismatch { declared: h.record_count, actual: actual.unwrap_or(0) });
        }
    }
    Ok(h)
}

/// Counts the varint-length-prefixed records of an uncompressed batch; None if
/// a length runs past the end.
fn count_records(mut b: &[u8]) -> Option<usize> {
    let mut n = 0;
    while !b.is_empty() {
        let (len, used) = read_varint(b)?;
        if len < 0 {
            return None;
        }
        let end = used.checked_add(len as usize)?;
        if end > b.len() {
            return None;
        }
        b = &b[end..];
        n += 1;
    }
    Some(n)
}

/// Zig-zag varint as Kafka records use it; returns (value, bytes used).
pub fn read_varint(b: &[u8]) -> Option<(i64, usize)> {
    let mut raw: u64 = 0;
    for (i, byte) in b.iter().enumerate().take(10) {
        raw |= ((byte & 0x7f) as u64) << (7 * i);
        if byte & 0x80 == 0 {
            let v = ((raw >> 1) as i64) ^ -((raw & 1) as i64);
            return Some((v, i + 1));
        }
    }
    None
}

/// The batch as served to a consumer: the stored bytes with baseOffset and
/// partitionLeaderEpoch rewritten (both outside the CRC).
pub fn patched(stored: &[u8], base_offset: i64, leader_epoch: i32) -> Bytes {
    let mut out = BytesMut::from(stored);
    out[0..8].copy_from_slice(&base_offset.to_be_bytes());
    out[12..16].copy_from_slice(&leader_epoch.to_be_bytes());
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds an uncompressed batch with `n` empty-ish records.
    pub fn batch(n: i32) -> Vec<u8> {
        let mut records = Vec::new();
        for i in 0..n {
            // record: attributes(0) tsDelta(0) offsetDelta(i) keyLen(-1) valueLen(-1) headers(0)
            let body = [0u8, 0, (i as u8) << 1, 1, 1, 0];
            records.push((body.len() as u8) << 1);
            records.extend_from_slice(&body);
        }
        let mut b = vec![0u8; HEADER_LEN];
        b[8..12].copy_from_slice(&((HEADER_LEN - 12 + records.len()) as i32).to_be_bytes());
        b[16] = 2;
        b[23..27].copy_from_slice(&(n - 1).to_be_bytes());
        b[57..61].copy_from_slice(&n.to_be_bytes());
        b.extend_from_slice(&records);
        let crc = crc32c::crc32c(&b[CRC_START..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        b
    }

    #[test]
    fn accepts_a_well_formed_batch() {
        let h = validate_produce(&batch(3)).unwrap();
        assert_eq!(h.record_count, 3);
    }

    #[test]
    fn rejects_each_kind_of_damage() {
        let good = batch(3);
        let cases: Vec<(Vec<u8>, fn(&BatchError) -> bool)> = vec![
            (good[..40].to_vec(), |e| matches!(e, BatchError::TooShort(40))),
            ({ let mut b = good.clone(); b[16] = 1; b }, |e| matches!(e, BatchError::UnsupportedMagic(1))),
            ({ let mut b = good.clone(); let l = b.len(); b[l - 1] ^= 1; b }, |e| matches!(e, BatchError::Crc { .. })),
            ({ let mut b = good.clone(); b.extend_from_slice(&good); b }, |e| matches!(e, BatchError::MultipleBatches)),
            (good[..good.len() - 2].to_vec(), |e| matches!(e, BatchError::LengthMismatch { .. })),
        ];
        for (bytes, expect) in cases {
            let err = validate_produce(&bytes).unwrap_err();
            assert!(expect(&err), "unexpected {err:?}");
        }
    }

    #[test]
    fn counts_records_of_uncompressed_batches() {
        let mut b = batch(3);
        b[23..27].copy_from_slice(&3i32.to_be_bytes());
        b[57..61].copy_from_slice(&4i32.to_be_bytes());
        let crc = crc32c::crc32c(&b[CRC_START..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        assert!(matches!(validate_produce(&b), Err(BatchError::RecordCountMismatch { declared: 4, actual: 3 })));
    }

    #[test]
    fn patching_keeps_the_crc_valid() {
        let b = batch(2);
        let p = patched(&b, 12345, 7);
        assert_eq!(i64_at(&p, 0), 12345);
        assert_eq!(i32_at(&p, 12), 7);
        validate_produce(&p).unwrap();
    }
}
