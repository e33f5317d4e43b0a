//! Decompression of a record batch's records, for validation only (stored
//! and served batches stay compressed as the producer sent them).
//!
//! Every codec is read as a stream through [`Inflated`], which refuses to
//! yield more than a named bound of decompressed bytes
//! (`batch_decompressed_bytes_max`): a small batch that inflates into
//! gigabytes is refused after the bound, never materialised. Memory stays at
//! the codec's window (gzip 32 KiB, lz4 at most its 4 MiB block, zstd its
//! window, capped at [`ZSTD_WINDOW_LOG_MAX`]); only raw snappy needs its
//! whole output at once, and its length is known (and checked) up front.

use std::io::{self, Read};

use super::batch::BatchError;

/// Kafka's codec ids (attributes & 0x07).
pub const NONE: i16 = 0;
pub const GZIP: i16 = 1;
pub const SNAPPY: i16 = 2;
pub const LZ4: i16 = 3;
pub const ZSTD: i16 = 4;

/// The largest zstd window a batch may make the decoder allocate: 2^24 =
/// 16 MiB, what zstd levels up to 19 use. Kafka's zstd-jni allows 2^27; a
/// batch compressed at levels 20-22 with a window over 16 MiB is refused
/// (CORRUPT_MESSAGE) rather than let a few bytes claim 128 MiB.
pub const ZSTD_WINDOW_LOG_MAX: u32 = 24;

/// Raw snappy expands at most about 21 times (a 3-byte copy of 64 bytes);
/// a block that claims more than this many times its size is refused
/// before its output is allocated.
const SNAPPY_EXPANSION_MAX: usize = 24;

/// The output length a raw snappy block claims, if it is one it can encode.
fn snappy_len(block: &[u8], bytes_max: usize) -> io::Result<usize> {
    let len = snap::raw::decompress_len(block).map_err(io::Error::other)?;
    if len > bytes_max {
        return Err(io::Error::new(io::ErrorKind::FileTooLarge, "snappy block past the bound"));
    }
    if len > block.len().saturating_mul(SNAPPY_EXPANSION_MAX) + 64 {
        return Err(io::Error::other(format!("a {}-byte snappy block claims {len} bytes, more than snappy can encode", block.len())));
    }
    Ok(len)
}

/// xerial snappy-java framing, which the Java client writes: this magic,
/// two 4-byte versions, then blocks of (4-byte big-endian length, raw snappy).
const XERIAL_MAGIC: &[u8] = b"\x82SNAPPY\x00";
const XERIAL_HEADER_LEN: usize = 16;

pub fn codec_name(codec: i16) -> &'static str {
    match codec {
        NONE => "none",
        GZIP => "gzip",
        SNAPPY => "snappy",
        LZ4 => "lz4",
        ZSTD => "zstd",
        _ => "unknown",
    }
}

/// The decompressed records of a batch as a stream, at most `bytes_max`
/// bytes of it (reading past that fails with [`BatchError::Inflates`]).
pub fn inflate<'a>(codec: i16, compressed: &'a [u8], bytes_max: usize) -> Result<Inflated<'a>, BatchError> {
    let bad = |e: io::Error| BatchError::Decompression { codec: codec_name(codec), detail: e.to_string() };
    let inner: Box<dyn Read + 'a> = match codec {
        GZIP => Box::new(flate2::read::MultiGzDecoder::new(compressed)),
        SNAPPY if compressed.starts_with(XERIAL_MAGIC) => Box::new(XerialSnappy { rest: compressed.get(XERIAL_HEADER_LEN..).unwrap_or(&[]), block: Vec::new(), at: 0, bytes_max }),
        SNAPPY => {
            let len = snappy_len(compressed, bytes_max).map_err(|e| match e.kind() {
                io::ErrorKind::FileTooLarge => BatchError::Inflates { codec: codec_name(codec), bytes_max },
                _ => bad(e),
            })?;
            let mut out = vec![0u8; len];
            let n = snap::raw::Decoder::new().decompress(compressed, &mut out).map_err(|e| bad(io::Error::other(e)))?;
            out.truncate(n);
            Box::new(io::Cursor::new(out))
        }
        LZ4 => Box::new(lz4::Decoder::new(compressed).map_err(bad)?),
        ZSTD => {
            let mut d = zstd::stream::read::Decoder::with_buffer(compressed).map_err(bad)?;
            d.window_log_max(ZSTD_WINDOW_LOG_MAX).map_err(bad)?;
            Box::new(d)
        }
        other => return Err(BatchError::UnknownCompression(other)),
    };
    Ok(Inflated { inner, codec, bytes_max, read: 0 })
}

/// Every decompressed byte of a batch's records, at most `bytes_max` (for
/// a rewrite: compaction).
pub fn inflate_all(codec: i16, compressed: &[u8], bytes_max: usize) -> Result<Vec<u8>, BatchError> {
    let mut r = inflate(codec, compressed, bytes_max)?;
    let mut out = Vec::new();
    r.read_to_end(&mut out).map_err(|e| r.error(&e))?;
    Ok(out)
}

/// Whether snappy records use the xerial framing (the Java client's).
pub fn is_xerial(compressed: &[u8]) -> bool {
    compressed.starts_with(XERIAL_MAGIC)
}

/// Xerial snappy blocks hold at most this much (snappy-java's default).
const XERIAL_BLOCK: usize = 32 << 10;

/// Compresses records as Kafka's clients do, for a batch the broker
/// rewrites (compaction): gzip; snappy raw, or xerial-framed when `xerial`;
/// lz4 frames of independent 64 KiB blocks without checksums (what Kafka
/// writes and every client reads); zstd at its default level 3.
pub fn deflate(codec: i16, data: &[u8], xerial: bool) -> Result<Vec<u8>, BatchError> {
    use std::io::Write;
    let bad = |e: io::Error| BatchError::Decompression { codec: codec_name(codec), detail: format!("compressing: {e}") };
    match codec {
        NONE => Ok(data.to_vec()),
        GZIP => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(data).map_err(bad)?;
            e.finish().map_err(bad)
        }
        SNAPPY if xerial => {
            let mut out = XERIAL_MAGIC.to_vec();
            out.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1]);
            for chunk in data.chunks(XERIAL_BLOCK) {
                let c = snap::raw::Encoder::new().compress_vec(chunk).map_err(|e| bad(io::Error::other(e)))?;
                out.extend_from_slice(&(c.len() as u32).to_be_bytes());
                out.extend_from_slice(&c);
            }
            Ok(out)
        }
        SNAPPY => snap::raw::Encoder::new().compress_vec(data).map_err(|e| bad(io::Error::other(e))),
        LZ4 => {
            let mut e = lz4::EncoderBuilder::new()
                .block_size(lz4::BlockSize::Max64KB)
                .block_mode(lz4::BlockMode::Independent)
                .checksum(lz4::ContentChecksum::NoChecksum)
                .build(Vec::new())
                .map_err(bad)?;
            e.write_all(data).map_err(bad)?;
            let (out, r) = e.finish();
            r.map_err(bad)?;
            Ok(out)
        }
        ZSTD => zstd::encode_all(data, 3).map_err(bad),
        other => Err(BatchError::UnknownCompression(other)),
    }
}

/// A decompressing reader that counts what it yields and stops at the bound.
pub struct Inflated<'a> {
    inner: Box<dyn Read + 'a>,
    codec: i16,
    bytes_max: usize,
    read: usize,
}

impl Inflated<'_> {
    /// Decompressed bytes read so far.
    pub fn bytes_read(&self) -> usize {
        self.read
    }

    /// The error a read of this stream failed with, as a batch error.
    pub fn error(&self, e: &io::Error) -> BatchError {
        if e.kind() == io::ErrorKind::FileTooLarge {
            BatchError::Inflates { codec: codec_name(self.codec), bytes_max: self.bytes_max }
        } else {
            BatchError::Decompression { codec: codec_name(self.codec), detail: e.to_string() }
        }
    }
}

impl Read for Inflated<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // Allow one byte past the bound so that reaching it exactly is fine.
        let room = (self.bytes_max + 1).saturating_sub(self.read).min(buf.len());
        if room == 0 && !buf.is_empty() {
            return Err(io::Error::new(io::ErrorKind::FileTooLarge, "decompressed past the bound"));
        }
        let n = self.inner.read(&mut buf[..room])?;
        self.read += n;
        if self.read > self.bytes_max {
            return Err(io::Error::new(io::ErrorKind::FileTooLarge, "decompressed past the bound"));
        }
        Ok(n)
    }
}

/// xerial-framed snappy, one block in memory at a time.
struct XerialSnappy<'a> {
    rest: &'a [u8],
    block: Vec<u8>,
    at: usize,
    bytes_max: usize,
}

impl Read for XerialSnappy<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.block.len() {
            if self.rest.is_empty() {
                return Ok(0);
            }
            if self.rest.len() < 4 {
                return Err(io::Error::other("truncated xerial snappy block length"));
            }
            let len = u32::from_be_bytes(self.rest[..4].try_into().expect("4 bytes")) as usize;
            let data = self.rest.get(4..4 + len).ok_or_else(|| io::Error::other("truncated xerial snappy block"))?;
            self.rest = &self.rest[4 + len..];
            let out_len = snappy_len(data, self.bytes_max)?;
            self.block.resize(out_len, 0);
            let n = snap::raw::Decoder::new().decompress(data, &mut self.block).map_err(io::Error::other)?;
            self.block.truncate(n);
            self.at = 0;
        }
        let n = (self.block.len() - self.at).min(buf.len());
        buf[..n].copy_from_slice(&self.block[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compress(codec: i16, data: &[u8]) -> Vec<u8> {
        deflate(codec, data, false).unwrap()
    }

    fn xerial(data: &[u8]) -> Vec<u8> {
        deflate(SNAPPY, data, true).unwrap()
    }

    fn read_all(codec: i16, compressed: &[u8], max: usize) -> Result<Vec<u8>, BatchError> {
        inflate_all(codec, compressed, max)
    }

    #[test]
    fn every_codec_round_trips_up_to_the_bound() {
        let data: Vec<u8> = (0..100_000u32).flat_map(|i| (i % 251).to_be_bytes()).collect();
        for codec in [GZIP, SNAPPY, LZ4, ZSTD] {
            let c = compress(codec, &data);
            assert_eq!(read_all(codec, &c, data.len()).unwrap(), data, "{}", codec_name(codec));
        }
        let x = xerial(&data);
        assert!(is_xerial(&x) && !is_xerial(&compress(SNAPPY, &data)));
        assert_eq!(read_all(SNAPPY, &x, data.len()).unwrap(), data);
    }

    #[test]
    fn a_bomb_is_refused_at_the_bound() {
        let zeros = vec![0u8; 64 << 20];
        for codec in [GZIP, SNAPPY, LZ4, ZSTD] {
            let c = compress(codec, &zeros);
            assert!(c.len() < 4 << 20, "{} compresses 64 MiB of zeros to {}", codec_name(codec), c.len());
            let err = read_all(codec, &c, 1 << 20).unwrap_err();
            assert!(matches!(err, BatchError::Inflates { bytes_max: 1048576, .. }), "{}: {err:?}", codec_name(codec));
        }
        let err = read_all(SNAPPY, &xerial(&zeros), 1 << 20).unwrap_err();
        assert!(matches!(err, BatchError::Inflates { .. }), "{err:?}");
    }

    #[test]
    fn a_snappy_block_that_claims_too_much_is_refused_before_allocating() {
        // A 6-byte raw block whose header claims 60 MiB.
        let mut claim = Vec::new();
        let mut n = 60usize << 20;
        while n >= 0x80 {
            claim.push((n as u8) | 0x80);
            n >>= 7;
        }
        claim.push(n as u8);
        claim.extend_from_slice(&[0, 0]);
        assert!(matches!(read_all(SNAPPY, &claim, 64 << 20), Err(BatchError::Decompression { .. })));
    }

    #[test]
    fn a_zstd_frame_with_a_huge_window_is_refused() {
        let data = vec![7u8; 1 << 20];
        let mut e = zstd::stream::write::Encoder::new(Vec::new(), 19).unwrap();
        e.set_parameter(zstd::stream::raw::CParameter::WindowLog(26)).unwrap();
        e.include_contentsize(false).unwrap();
        std::io::Write::write_all(&mut e, &data).unwrap();
        let big_window = e.finish().unwrap();
        assert!(matches!(read_all(ZSTD, &big_window, 64 << 20), Err(BatchError::Decompression { .. })));
        // The default window of a producer's level is fine.
        assert_eq!(read_all(ZSTD, &zstd::encode_all(&data[..], 19).unwrap(), 64 << 20).unwrap(), data);
    }

    #[test]
    fn garbage_is_a_decompression_error_not_a_panic() {
        for codec in [GZIP, SNAPPY, LZ4, ZSTD] {
            for junk in [&b""[..], b"\x00", b"\xff\xff\xff\xff\xff\xff\xff\xff", XERIAL_MAGIC] {
                let r = read_all(codec, junk, 1 << 20);
                assert!(r.is_err() || r.as_ref().unwrap().is_empty(), "{}: {r:?}", codec_name(codec));
            }
        }
        assert!(matches!(read_all(7, b"x", 10), Err(BatchError::UnknownCompression(7))));
    }
}
