//! Key layout; see the crate docs.

use chronik::GroupId;

pub const VOTE: u8 = b'v';
pub const COMMITTED: u8 = b'c';
pub const PURGED: u8 = b'p';
pub const STATE: u8 = b's';
pub const SNAPSHOT: u8 = b'n';
pub const INDEX: u8 = b'i';
/// Partition: idempotent producer state, g ++ b'P' ++ producer id.
pub const PRODUCER: u8 = b'P';
/// Partition: leader epochs, g ++ b'E' ++ epoch -> its first offset.
pub const EPOCH: u8 = b'E';
/// Offsets partition: g ++ b'O' ++ group ++ topic ++ partition -> committed offset.
pub const OFFSET: u8 = b'O';
/// Offsets partition: g ++ b'G' ++ group -> the group's last generation.
pub const GROUP: u8 = b'G';
/// Offsets partition: g ++ b'T' ++ group -> when its record was stored
/// (an Empty group's offsets expire from then), i64 BE.
pub const GROUP_TIME: u8 = b'T';
/// Partition: bytes of the batches its index holds (retention.bytes), u64 BE.
pub const SIZE: u8 = b'z';
/// Partition: a checkpoint, g ++ b'k' ++ log index ++ next offset at it ->
/// bincode(SnapshotMeta, snapshot body).
pub const CHECKPOINT: u8 = b'k';
/// Partition: the time index (see `time_index`), g ++ b't' ++ timestamp
/// (sign bit flipped) -> base offset, i64 BE.
pub const TIME: u8 = b't';
/// Partition: the compaction job to run (see `compaction`), bincode(Job).
pub const COMPACTION: u8 = b'C';
/// Partition: where this replica's last compaction ended, i64 BE.
pub const CLEANED: u8 = b'x';
/// The tags of a partition's small state, carried whole in its snapshots.
pub const SNAPSHOT_TAGS: [u8; 5] = [PRODUCER, EPOCH, OFFSET, GROUP, GROUP_TIME];

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

pub fn checkpoint(g: GroupId, index: u64, next_offset: i64) -> [u8; 25] {
    let mut k = [0u8; 25];
    k[..9].copy_from_slice(&tag(g, CHECKPOINT));
    k[9..17].copy_from_slice(&index.to_be_bytes());
    k[17..].copy_from_slice(&(next_offset.max(0) as u64).to_be_bytes());
    k
}

/// (log index, next offset) of a checkpoint key.
pub fn parse_checkpoint(k: &[u8]) -> Option<(u64, i64)> {
    let index = u64::from_be_bytes(k.get(9..17)?.try_into().ok()?);
    let next = u64::from_be_bytes(k.get(17..25)?.try_into().ok()?) as i64;
    Some((index, next))
}

pub fn index_offset(k: &[u8]) -> i64 {
    u64::from_be_bytes(k[9..17].try_into().expect("index key is 17 bytes")) as i64
}

/// g ++ tag ++ suffix.
pub fn tagged(g: GroupId, tag_byte: u8, suffix: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(9 + suffix.len());
    k.extend_from_slice(&tag(g, tag_byte));
    k.extend_from_slice(suffix);
    k
}

/// A length-prefixed string, so that one name is never a prefix of another's key.
fn push_str(k: &mut Vec<u8>, s: &str) {
    k.extend_from_slice(&(s.len() as u32).to_be_bytes());
    k.extend_from_slice(s.as_bytes());
}

/// The key prefix of a group's committed offsets.
pub fn offsets_of(g: GroupId, group: &str) -> Vec<u8> {
    let mut k = tag(g, OFFSET).to_vec();
    push_str(&mut k, group);
    k
}

pub fn offset(g: GroupId, group: &str, topic: &str, partition: i32) -> Vec<u8> {
    let mut k = offsets_of(g, group);
    push_str(&mut k, topic);
    k.extend_from_slice(&partition.to_be_bytes());
    k
}

/// (group, topic, partition) from any offset key of partition `g`.
pub fn parse_any_offset(g: GroupId, k: &[u8]) -> Option<(String, String, i32)> {
    let rest = k.get(tag(g, OFFSET).len()..)?;
    let len = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
    let group = std::str::from_utf8(rest.get(4..4 + len)?).ok()?.to_string();
    let (topic, partition) = parse_offset(g, &group, k)?;
    Some((group, topic, partition))
}

/// (topic, partition) from an offset key of `group`.
pub fn parse_offset(g: GroupId, group: &str, k: &[u8]) -> Option<(String, i32)> {
    let rest = k.get(offsets_of(g, group).len()..)?;
    let len = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
    let topic = std::str::from_utf8(rest.get(4..4 + len)?).ok()?.to_string();
    let partition = i32::from_be_bytes(rest.get(4 + len..8 + len)?.try_into().ok()?);
    Some((topic, partition))
}
