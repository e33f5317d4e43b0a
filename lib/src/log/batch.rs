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

use std::ops::ControlFlow;

use bytes::{Bytes, BytesMut};

use super::records;

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
    #[error("batch declares {declared} records but holds {actual}")]
    RecordCountMismatch { declared: i32, actual: i32 },
    #[error("produce requests must carry exactly one record batch per partition, got more")]
    MultipleBatches,
    #[error("the batch is {bytes} bytes, more than the {bytes_max} the topic accepts (max.message.bytes / message.max.bytes)")]
    TooLarge { bytes: usize, bytes_max: usize },
    #[error("the base offset of a produced batch must be 0, not {0}")]
    NonZeroBaseOffset(i64),
    #[error("clients may not write control batches")]
    ControlBatch,
    #[error("idempotent batch of producer {producer_id} has sequence {sequence}")]
    InvalidSequence { producer_id: i64, sequence: i32 },
    #[error("record {index} has offset delta {offset_delta}; records must count 0, 1, 2, ...")]
    OffsetDelta { index: i32, offset_delta: i32 },
    #[error("malformed record: {0}")]
    MalformedRecord(String),
    #[error("unknown compression codec {0}")]
    UnknownCompression(i16),
    #[error("{codec} records do not decompress: {detail}")]
    Decompression { codec: &'static str, detail: String },
    #[error("{codec} records decompress to more than {bytes_max} bytes (batch_decompressed_bytes_max)")]
    Inflates { codec: &'static str, bytes_max: usize },
    #[error("record {index} has no key; a compacted topic needs one")]
    KeyRequired { index: i32 },
    #[error("timestamp {timestamp} of record {index} is out of range [{min}, {max}] (message.timestamp.before/after.max.ms)")]
    TimestampOutOfRange { index: i32, timestamp: i64, min: i64, max: i64 },
    #[error("producers may not set the timestamp type LogAppendTime")]
    LogAppendTimeFromProducer,
}

impl BatchError {
    /// CRC and framing errors mean the bytes are damaged (CORRUPT_MESSAGE);
    /// the rest are well-formed but unacceptable (INVALID_RECORD, or the
    /// more precise code the Kafka mapping gives them).
    pub fn is_corruption(&self) -> bool {
        matches!(
            self,
            BatchError::TooShort(_) | BatchError::LengthMismatch { .. } | BatchError::Crc { .. } | BatchError::UnknownCompression(_) | BatchError::Decompression { .. }
        )
    }
}

/// The topic's timestamp rule (message.timestamp.type and its bounds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampRule {
    /// Producers' timestamps within `now - before_max_ms ..= now + after_max_ms`.
    CreateTime { before_max_ms: i64, after_max_ms: i64 },
    /// The broker stamps the batch on append.
    LogAppendTime,
}

/// What a produced batch must satisfy, from the topic's configs and the
/// node's bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchPolicy {
    /// max.message.bytes of the topic (message.max.bytes of the broker by default).
    pub batch_bytes_max: usize,
    /// batch_decompressed_bytes_max of the node.
    pub decompressed_bytes_max: usize,
    pub timestamps: TimestampRule,
    /// Compacted topics need a key on every record.
    pub key_required: bool,
}

impl Default for BatchPolicy {
    fn default() -> Self {
        Self {
            batch_bytes_max: 1_048_588,
            decompressed_bytes_max: 64 << 20,
            timestamps: TimestampRule::CreateTime { before_max_ms: i64::MAX, after_max_ms: 3_600_000 },
            key_required: false,
        }
    }
}

/// A batch that passed validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidBatch {
    pub header: BatchHeader,
    /// The largest record timestamp (as the records say; -1 if none).
    pub max_timestamp: i64,
    pub records_bytes: usize,
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

/// Validates the `records` field of one produce partition as Kafka's
/// LogValidator does for magic 2: exactly one batch; its length, CRC-32C,
/// size bound, base offset, record count and lastOffsetDelta consistent;
/// no control batch; a sequence for idempotent batches; and every record
/// walked (decompressed once if compressed, within the bound): its fields
/// fill its length, offset deltas count 0..n-1, keys where the topic needs
/// them, timestamps as the topic allows. Stored and served as sent.
pub fn validate_produce(b: &[u8], policy: &BatchPolicy, now_ms: i64) -> Result<ValidBatch, BatchError> {
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
    if b.len() > policy.batch_bytes_max {
        return Err(BatchError::TooLarge { bytes: b.len(), bytes_max: policy.batch_bytes_max });
    }
    let actual = crc32c::crc32c(&b[CRC_START..]);
    if actual != h.crc {
        return Err(BatchError::Crc { expected: h.crc, actual });
    }
    let base_offset = i64_at(b, 0);
    if base_offset != 0 {
        return Err(BatchError::NonZeroBaseOffset(base_offset));
    }
    if h.record_count < 1 || h.last_offset_delta != h.record_count - 1 {
        return Err(BatchError::BadCount { count: h.record_count, last_offset_delta: h.last_offset_delta });
    }
    if h.is_control() {
        return Err(BatchError::ControlBatch);
    }
    if h.producer_id >= 0 && h.base_sequence < 0 {
        return Err(BatchError::InvalidSequence { producer_id: h.producer_id, sequence: h.base_sequence });
    }
    let log_append_time_header = h.attributes & 0x08 != 0;
    let summary = records::walk(&h, b, policy.decompressed_bytes_max, |r| {
        if r.index >= h.record_count {
            return Err(BatchError::RecordCountMismatch { declared: h.record_count, actual: r.index + 1 });
        }
        if r.offset_delta != r.index {
            return Err(BatchError::OffsetDelta { index: r.index, offset_delta: r.offset_delta });
        }
        if policy.key_required && !r.has_key {
            return Err(BatchError::KeyRequired { index: r.index });
        }
        match policy.timestamps {
            TimestampRule::CreateTime { before_max_ms, after_max_ms } if r.timestamp != -1 => {
                let min = now_ms.saturating_sub(before_max_ms);
                let max = now_ms.saturating_add(after_max_ms);
                if r.timestamp < min || r.timestamp > max {
                    return Err(BatchError::TimestampOutOfRange { index: r.index, timestamp: r.timestamp, min, max });
                }
            }
            _ if log_append_time_header => return Err(BatchError::LogAppendTimeFromProducer),
            _ => {}
        }
        Ok(ControlFlow::Continue(()))
    })?;
    if summary.records != h.record_count {
        return Err(BatchError::RecordCountMismatch { declared: h.record_count, actual: summary.records });
    }
    Ok(ValidBatch { header: h, max_timestamp: summary.max_timestamp, records_bytes: summary.records_bytes })
}

/// The batch stamped with the broker's time, as Kafka does for LogAppendTime
/// topics: the timestamp-type attribute set, maxTimestamp = `now_ms`, the
/// CRC recomputed. The records are not touched (consumers take every
/// record's time from maxTimestamp on such a batch).
pub fn stamp_log_append_time(b: Bytes, now_ms: i64) -> Bytes {
    let mut out = b.try_into_mut().unwrap_or_else(|shared| BytesMut::from(&shared[..]));
    let attributes = i16_at(&out, 21) | 0x08;
    out[21..23].copy_from_slice(&attributes.to_be_bytes());
    out[35..43].copy_from_slice(&now_ms.to_be_bytes());
    recrc(&mut out);
    out.freeze()
}

/// Sets a batch's CRC-32C after its attributes or records changed.
pub fn recrc(b: &mut [u8]) {
    let crc = crc32c::crc32c(&b[CRC_START..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
}

/// The offsets a stored batch takes: lastOffsetDelta + 1, which compaction
/// keeps even when it removes records (a batch may keep none). None for a
/// header that makes no sense.
pub fn offsets_taken(h: &BatchHeader) -> Option<i64> {
    (h.last_offset_delta >= 0 && h.record_count >= 0 && h.record_count <= h.last_offset_delta + 1).then(|| h.last_offset_delta as i64 + 1)
}

/// The offset after a served batch (its patched base offset plus its records).
pub fn next_offset(served: &[u8]) -> Option<i64> {
    let h = parse_header(served).ok()?;
    Some(i64_at(served, 0) + h.last_offset_delta as i64 + 1)
}

/// The batch as served to a consumer: the stored bytes with baseOffset and
/// partitionLeaderEpoch rewritten (both outside the CRC). In place when the
/// caller holds the only reference (a batch just read from disk), else on a copy.
pub fn patched(stored: Bytes, base_offset: i64, leader_epoch: i32) -> Bytes {
    let mut out = stored.try_into_mut().unwrap_or_else(|shared| BytesMut::from(&shared[..]));
    out[0..8].copy_from_slice(&base_offset.to_be_bytes());
    out[12..16].copy_from_slice(&leader_epoch.to_be_bytes());
    out.freeze()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::log::compression;

    pub use crate::log::testing::wrap;

    /// The records of a batch: (key, value, timestamp delta) each.
    pub fn records_of(records: &[(Option<&[u8]>, &[u8], i64)]) -> Vec<u8> {
        let recs: Vec<(Option<&[u8]>, Option<&[u8]>, i64)> = records.iter().map(|(k, v, t)| (*k, Some(*v), *t)).collect();
        crate::log::testing::records(&recs, &[])
    }

    pub fn batch_of(records: &[(Option<&[u8]>, &[u8], i64)], attributes: i16) -> Vec<u8> {
        wrap(&records_of(records), records.len() as i32, attributes)
    }

    /// An uncompressed batch of `n` records without key or value.
    pub fn batch(n: i32) -> Vec<u8> {
        let recs: Vec<(Option<&[u8]>, &[u8], i64)> = (0..n).map(|_| (None, &b""[..], 0)).collect();
        batch_of(&recs, 0)
    }

    const NOW: i64 = 1_000;

    fn check(b: &[u8]) -> Result<ValidBatch, BatchError> {
        validate_produce(b, &BatchPolicy::default(), NOW)
    }

    #[test]
    fn accepts_a_well_formed_batch() {
        let v = check(&batch(3)).unwrap();
        assert_eq!(v.header.record_count, 3);
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
            ({ let mut b = good.clone(); b[7] = 5; b }, |e| matches!(e, BatchError::NonZeroBaseOffset(5))),
            ({ let mut b = good.clone(); b[22] |= 0x20; recrc(&mut b); b }, |e| matches!(e, BatchError::ControlBatch)),
            ({ let mut b = good.clone(); b[43..51].copy_from_slice(&7i64.to_be_bytes()); recrc(&mut b); b }, |e| matches!(e, BatchError::InvalidSequence { producer_id: 7, .. })),
        ];
        for (bytes, expect) in cases {
            let err = check(&bytes).unwrap_err();
            assert!(expect(&err), "unexpected {err:?}");
        }
    }

    #[test]
    fn a_count_that_lies_is_refused() {
        let recs = records_of(&[(None, b"a", 0), (None, b"b", 0), (None, b"c", 0)]);
        // says 4 (lastOffsetDelta 3) but holds 3
        assert!(matches!(check(&wrap(&recs, 4, 0)), Err(BatchError::RecordCountMismatch { declared: 4, actual: 3 })));
        // says 2 but holds 3
        assert!(matches!(check(&wrap(&recs, 2, 0)), Err(BatchError::RecordCountMismatch { declared: 2, .. })));
        // says 2^31-1 but holds 3: refused without walking past the data
        assert!(matches!(check(&wrap(&recs, i32::MAX, 0)), Err(BatchError::RecordCountMismatch { .. })));
        // lastOffsetDelta disagrees with the count
        let mut b = wrap(&recs, 3, 0);
        b[23..27].copy_from_slice(&5i32.to_be_bytes());
        recrc(&mut b);
        assert!(matches!(check(&b), Err(BatchError::BadCount { count: 3, last_offset_delta: 5 })));
    }

    #[test]
    fn offset_deltas_must_count_from_zero() {
        let mut recs = records_of(&[(None, b"a", 0), (None, b"b", 0)]);
        // the second record's offset delta (byte after its length, attributes, ts) 1 -> 3
        let second = 1 + recs[0] as usize / 2;
        recs[second + 3] = 6;
        assert!(matches!(check(&wrap(&recs, 2, 0)), Err(BatchError::OffsetDelta { index: 1, offset_delta: 3 })));
    }

    #[test]
    fn size_timestamps_and_keys_follow_the_topic() {
        let b = batch_of(&[(None, &[7u8; 500], 0)], 0);
        let small = BatchPolicy { batch_bytes_max: 100, ..Default::default() };
        assert!(matches!(validate_produce(&b, &small, NOW), Err(BatchError::TooLarge { bytes_max: 100, .. })));

        let far = batch_of(&[(Some(b"k"), b"v", 10_000_000)], 0);
        assert!(matches!(check(&far), Err(BatchError::TimestampOutOfRange { index: 0, .. })));
        let log_append = BatchPolicy { timestamps: TimestampRule::LogAppendTime, ..Default::default() };
        validate_produce(&far, &log_append, NOW).expect("LogAppendTime topics take any producer timestamp");
        let strict = BatchPolicy { timestamps: TimestampRule::CreateTime { before_max_ms: 10, after_max_ms: 10 }, ..Default::default() };
        assert!(matches!(validate_produce(&batch_of(&[(None, b"v", -100)], 0), &strict, NOW), Err(BatchError::TimestampOutOfRange { .. })));
        // As Kafka: a producer's batch may not claim LogAppendTime where the
        // broker would have to trust it.
        assert!(matches!(validate_produce(&batch_of(&[(None, b"v", 0)], 0x08), &log_append, NOW), Err(BatchError::LogAppendTimeFromProducer)));

        let compacted = BatchPolicy { key_required: true, ..Default::default() };
        assert!(matches!(validate_produce(&batch_of(&[(Some(b"k"), b"v", 0), (None, b"v", 0)], 0), &compacted, NOW), Err(BatchError::KeyRequired { index: 1 })));
        validate_produce(&batch_of(&[(Some(b"k"), b"v", 0)], 0), &compacted, NOW).unwrap();
    }

    #[test]
    fn compressed_records_are_validated_and_bombs_refused() {
        let recs = records_of(&[(Some(b"k1"), b"hello", 1), (Some(b"k2"), b"world", 2)]);
        let z = zstd::encode_all(&recs[..], 3).unwrap();
        let v = check(&wrap(&z, 2, compression::ZSTD)).unwrap();
        assert_eq!((v.max_timestamp, v.records_bytes), (1002, recs.len()));
        assert!(matches!(check(&wrap(&z, 3, compression::ZSTD)), Err(BatchError::RecordCountMismatch { declared: 3, actual: 2 })));
        assert!(matches!(check(&wrap(b"not zstd", 1, compression::ZSTD)), Err(BatchError::Decompression { .. })));
        // 1 MiB of records that fit in a few KiB
        let many: Vec<(Option<&[u8]>, &[u8], i64)> = (0..1024).map(|_| (None, &[0u8; 1024][..], 0)).collect();
        let big = records_of(&many);
        let z = zstd::encode_all(&big[..], 3).unwrap();
        let tight = BatchPolicy { decompressed_bytes_max: 64 * 1024, ..Default::default() };
        assert!(matches!(validate_produce(&wrap(&z, 1024, compression::ZSTD), &tight, NOW), Err(BatchError::Inflates { bytes_max: 65536, .. })));
        check(&wrap(&z, 1024, compression::ZSTD)).unwrap();
    }

    #[test]
    fn log_append_time_stamps_the_header_and_keeps_the_crc_valid() {
        let b = stamp_log_append_time(Bytes::from(batch(2)), 1_700_000_000_000);
        let h = parse_header(&b).unwrap();
        assert_eq!((h.attributes & 0x08, h.max_timestamp, h.base_timestamp), (0x08, 1_700_000_000_000, 1000));
        assert_eq!(crc32c::crc32c(&b[CRC_START..]), h.crc);
    }

    #[test]
    fn patching_keeps_the_crc_valid() {
        let b = batch(2);
        let p = patched(Bytes::from(b.clone()), 12345, 7);
        assert_eq!(i64_at(&p, 0), 12345);
        assert_eq!(i32_at(&p, 12), 7);
        assert_eq!(crc32c::crc32c(&p[CRC_START..]), parse_header(&p).unwrap().crc);
    }
}
