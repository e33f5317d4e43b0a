//! Key layout; see the crate docs.

use chronik::GroupId;

pub const VOTE: u8 = b'v';
pub const COMMITTED: u8 = b'c';
pub const PURGED: u8 = b'p';
pub const STATE: u8 = b's';
pub const SNAPSHOT: u8 = b'n';
pub const INDEX: u8 = b'i';

pub fn group(g: GroupId) -> [u8; 8] {
    g.0.to_be_bytes()
}

pub fn parse_group(k: &[u8]) -> GroupId {
    GroupId(u64::from_be_bytes(k[..8].try_into().expect("group key is 8 bytes")))
}

pub fn log(g: GroupId, index: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&g.0.to_be_bytes());
    k[8..].copy_from_slice(&index.to_be_bytes());
    k
}


pub fn tag(g: GroupId, tag: u8) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[..8].copy_from_slice(&g.0.to_be_bytes());
    k[8] = tag;
    k
}

/// Index key of the batch starting at `offset` (offsets are >= 0, so their
/// big-endian bytes sort like the numbers).
pub fn index(g: GroupId, offset: i64) -> [u8; 17] {
    let mut k = [0u8; 17];
    k[..9].copy_from_slice(&tag(g, INDEX));
    k[9..].copy_from_slice(&(offset.max(0) as u64).to_be_bytes());
    k
}

pub fn index_offset(k: &[u8]) -> i64 {
    u64::from_be_bytes(k[9..17].try_into().expect("index key is 17 bytes")) as i64
}
