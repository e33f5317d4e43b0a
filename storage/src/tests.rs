
use bytes::Bytes;
use chronik::engine::StorageEngine;
use chronik::{Command, GroupId, TypeConfig};
use openraft::testing::log::{StoreBuilder, Suite};
use openraft::StorageError;

use super::*;

/// Each build gets a fresh database; the temp dirs live as long as the test.
struct Builder {
    group: GroupId,
    dirs: std::sync::Mutex<Vec<tempfile::TempDir>>,
}

impl StoreBuilder<TypeConfig, SledLog, SledStateMachine, ()> for Builder {
    async fn build(&self) -> Result<((), SledLog, SledStateMachine), StorageError<TypeConfig>> {
        let dir = tempfile::tempdir().unwrap();
        let engine = SledEngine::open(dir.path(), 1).unwrap();
        self.dirs.lock().unwrap().push(dir);
        let opened = if self.group == CONTROLLER_GROUP {
            engine.open_controller().unwrap().0
        } else {
            engine.open_partition(self.group).unwrap().0
        };
        Ok(((), opened.log, opened.sm))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_partition_group() {
    Suite::test_all(Builder { group: GroupId(7), dirs: Default::default() }).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_controller_group() {
    Suite::test_all(Builder { group: CONTROLLER_GROUP, dirs: Default::default() }).await.unwrap();
}

/// A minimal valid batch of `n` records.
fn batch(n: i32, ts: i64) -> Bytes {
    let mut records = Vec::new();
    for i in 0..n {
        let body = [0u8, 0, (i as u8) << 1, 1, 1, 0];
        records.push((body.len() as u8) << 1);
        records.extend_from_slice(&body);
    }
    let mut b = vec![0u8; 61];
    b[8..12].copy_from_slice(&((61 - 12 + records.len()) as i32).to_be_bytes());
    b[16] = 2;
    b[23..27].copy_from_slice(&(n - 1).to_be_bytes());
    b[27..35].copy_from_slice(&ts.to_be_bytes());
    b[35..43].copy_from_slice(&ts.to_be_bytes());
    b[57..61].copy_from_slice(&n.to_be_bytes());
    b.extend_from_slice(&records);
    let crc = crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    Bytes::from(b)
}

fn crc32c(b: &[u8]) -> u32 {
    // Small bitwise CRC-32C so the test does not share the code it checks.
    let mut crc = !0u32;
    for &byte in b {
        crc ^= byte as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0x82F6_3B78 } else { crc >> 1 };
        }
    }
    !crc
}

/// Appends through the real log store and state machine, then reads back by
/// offset, across a reopen of the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_are_assigned_on_apply_and_survive_reopen() {
    use openraft::entry::RaftEntry;
    use openraft::storage::{RaftLogStorage, RaftStateMachine};
    use openraft::testing::log_id;

    let dir = tempfile::tempdir().unwrap();
    let g = GroupId(3);
    let sizes = [3, 1, 5];
    {
        let engine = SledEngine::open(dir.path(), 1).unwrap();
        let (mut opened, reader) = engine.open_partition(g).unwrap();
        let entries: Vec<chronik::Entry> = sizes
            .iter()
            .enumerate()
            .map(|(i, n)| chronik::Entry::new_normal(log_id::<TypeConfig>(1, 1, i as u64 + 1), Command::Append { batch: batch(*n, 1000 + i as i64), token: 0 }))
            .collect();
        let stream = futures::stream::iter(entries.clone().into_iter().map(|e| Ok((e, None))));
        // Make the entries durable first, as Raft would before applying them.
        opened.log.append(entries.clone(), openraft::storage::IOFlushed::noop()).await.unwrap();
        engine.inner.flusher.flush().await.unwrap();
        opened.sm.apply(stream).await.unwrap();
        assert_eq!(reader.high_watermark(), 9);
        let base = |b: &Bytes| i64::from_be_bytes(b[0..8].try_into().unwrap());
        let got = reader.read(3, usize::MAX).unwrap();
        assert_eq!(got.iter().map(base).collect::<Vec<_>>(), vec![3, 4]);
        let got = reader.read(6, usize::MAX).unwrap();
        assert_eq!(got.iter().map(base).collect::<Vec<_>>(), vec![4], "starts at the batch holding offset 6");
        let got = reader.read(1, usize::MAX).unwrap();
        assert_eq!(got.iter().map(base).collect::<Vec<_>>(), vec![0, 3, 4]);
        assert_eq!(reader.read(0, 1).unwrap().len(), 1, "max_bytes still returns one whole batch");
        assert!(reader.read(9, usize::MAX).unwrap().is_empty());
        let ts = reader.batch_at_timestamp(1001).unwrap().unwrap();
        assert_eq!(i64::from_be_bytes(ts[0..8].try_into().unwrap()), 3);
        let _ = opened.log.get_log_state().await.unwrap();
    }
    let engine = SledEngine::open(dir.path(), 1).unwrap();
    let (mut opened, reader) = engine.open_partition(g).unwrap();
    assert_eq!(reader.high_watermark(), 9, "applied state is persisted");
    assert_eq!(opened.sm.applied_state().await.unwrap().0.map(|l| l.index()), Some(3));
    assert_eq!(opened.log.get_log_state().await.unwrap().last_log_id.map(|l| l.index()), Some(3));
    assert_eq!(engine.local_groups().unwrap(), vec![g]);
    engine.drop_group(g).unwrap();
    assert!(engine.local_groups().unwrap().is_empty());
    let (_, reader) = engine.open_partition(g).unwrap();
    assert_eq!(reader.high_watermark(), 0, "dropped group starts empty");
}

