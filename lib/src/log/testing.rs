//! Record batches built as producers build them, for tests (here and, with
//! the `testing` feature, in other crates).

use super::batch::{recrc, HEADER_LEN};

fn varint(v: i64, out: &mut Vec<u8>) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    loop {
        let b = (z & 0x7f) as u8;
        z >>= 7;
        if z == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn field(f: Option<&[u8]>, out: &mut Vec<u8>) {
    match f {
        Some(f) => {
            varint(f.len() as i64, out);
            out.extend_from_slice(f);
        }
        None => varint(-1, out),
    }
}

/// The records of a batch: (key, value (None: a tombstone), timestamp
/// delta) each, offset deltas 0, 1, 2, ..., each with `headers`.
pub fn records(recs: &[(Option<&[u8]>, Option<&[u8]>, i64)], headers: &[(&[u8], Option<&[u8]>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, (key, value, ts)) in recs.iter().enumerate() {
        let mut r = vec![0u8];
        varint(*ts, &mut r);
        varint(i as i64, &mut r);
        field(*key, &mut r);
        field(*value, &mut r);
        varint(headers.len() as i64, &mut r);
        for (k, v) in headers {
            field(Some(k), &mut r);
            field(*v, &mut r);
        }
        varint(r.len() as i64, &mut out);
        out.extend(r);
    }
    out
}

/// A batch around `body` (records, maybe compressed): header fields set as
/// a producer without idempotence would, base timestamp 1000, CRC computed.
pub fn wrap(body: &[u8], count: i32, attributes: i16) -> Vec<u8> {
    let mut b = vec![0u8; HEADER_LEN];
    b[8..12].copy_from_slice(&((HEADER_LEN - 12 + body.len()) as i32).to_be_bytes());
    b[16] = 2;
    b[21..23].copy_from_slice(&attributes.to_be_bytes());
    b[23..27].copy_from_slice(&(count - 1).to_be_bytes());
    b[27..35].copy_from_slice(&1000i64.to_be_bytes());
    b[43..51].copy_from_slice(&(-1i64).to_be_bytes());
    b[51..53].copy_from_slice(&(-1i16).to_be_bytes());
    b[53..57].copy_from_slice(&(-1i32).to_be_bytes());
    b[57..61].copy_from_slice(&count.to_be_bytes());
    b.extend_from_slice(body);
    recrc(&mut b);
    b
}

/// A keyed batch compressed with `codec` (0: none).
pub fn keyed_batch(recs: &[(Option<&str>, Option<&str>, i64)], codec: i16) -> Vec<u8> {
    let recs: Vec<(Option<&[u8]>, Option<&[u8]>, i64)> = recs.iter().map(|(k, v, t)| (k.map(str::as_bytes), v.map(str::as_bytes), *t)).collect();
    let body = super::compression::deflate(codec, &records(&recs, &[(b"h", None)]), false).expect("test records compress");
    wrap(&body, recs.len() as i32, codec)
}
