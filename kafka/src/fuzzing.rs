//! The body of the fuzz target (`fuzz/`), kept here so that the regression
//! test replays exactly what the fuzzer ran: decode a frame as the server
//! does, and validate the record batches of a Produce as the broker does,
//! once as sent and once with the CRC made right (so that mutated records
//! reach the record walker and the decompressors, past the CRC check).

use bytes::Bytes;
use chronik::log::batch::{self, BatchPolicy};
use kafka_protocol::messages::RequestKind;

use crate::decode::{decode_frame, Decoded};

/// One fuzz input: a request frame without its 4-byte length prefix.
pub fn one_input(data: &[u8]) {
    let frame = Bytes::copy_from_slice(data);
    let Ok(Decoded::Request { request, .. }) = decode_frame(&frame) else { return };
    if let RequestKind::Produce(req) = request {
        let policy = BatchPolicy::default();
        for t in &req.topic_data {
            for p in &t.partition_data {
                if let Some(records) = &p.records {
                    let _ = batch::validate_produce(records, &policy, 0);
                    if records.len() >= batch::HEADER_LEN {
                        let mut fixed = records.to_vec();
                        let crc = crc32c::crc32c(&fixed[21..]);
                        fixed[17..21].copy_from_slice(&crc.to_be_bytes());
                        let _ = batch::validate_produce(&fixed, &policy, 0);
                    }
                }
            }
        }
    }
}
