
use bytes::Bytes;
use chronik::raft::engine::StorageEngine;
use chronik::{Command, GroupId, TypeConfig};
use openraft::testing::log::{StoreBuilder, Suite};
use openraft::StorageError;

use super::*;

/// Opens the database in `dir`. Reopened right after an engine was dropped,
/// sled's IO threads may still hold its file lock for a moment.
fn open_engine(dir: &std::path::Path) -> SledEngine {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match SledEngine::open(dir, 1, chronik::config::CACHE_BYTES_DEFAULT) {
            Ok(e) => return e,
            Err(e) if e.to_string().contains("could not acquire lock") && std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(50))
            }
            Err(e) => panic!("opening {}: {e}", dir.display()),
        }
    }
}

/// Each build gets a fresh database; the temp dirs live as long as the test.
struct Builder {
    group: GroupId,
    dirs: std::sync::Mutex<Vec<tempfile::TempDir>>,
}

impl StoreBuilder<TypeConfig, SledLog, SledStateMachine, ()> for Builder {
    async fn build(&self) -> Result<((), SledLog, SledStateMachine), StorageError<TypeConfig>> {
        let dir = tempfile::tempdir().unwrap();
        let engine = open_engine(dir.path());
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

/// A minimal valid batch of `n` records, from a producer without idempotence.
fn batch(n: i32, ts: i64) -> Bytes {
    idempotent_batch(n, ts, -1, 0, -1)
}

/// A batch of `n` records from producer `pid` (epoch, first sequence).
fn idempotent_batch(n: i32, ts: i64, pid: i64, epoch: i16, seq: i32) -> Bytes {
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
    b[43..51].copy_from_slice(&pid.to_be_bytes());
    b[51..53].copy_from_slice(&epoch.to_be_bytes());
    b[53..57].copy_from_slice(&seq.to_be_bytes());
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
        let engine = open_engine(dir.path());
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
    let engine = open_engine(dir.path());
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


/// Makes `cmds` durable as entries `first..` of `term`, then applies them.
async fn apply_all(engine: &SledEngine, opened: &mut chronik::raft::engine::OpenedGroup<SledEngine>, term: u64, first: u64, cmds: Vec<Command>) {
    use openraft::entry::RaftEntry;
    use openraft::storage::{RaftLogStorage, RaftStateMachine};
    use openraft::testing::log_id;
    let entries: Vec<chronik::Entry> = cmds
        .into_iter()
        .enumerate()
        .map(|(i, c)| chronik::Entry::new_normal(log_id::<TypeConfig>(term, 1, first + i as u64), c))
        .collect();
    opened.log.append(entries.clone(), openraft::storage::IOFlushed::noop()).await.unwrap();
    engine.inner.flusher.flush().await.unwrap();
    opened.sm.apply(futures::stream::iter(entries.into_iter().map(|e| Ok((e, None))))).await.unwrap();
}

fn append(b: Bytes) -> Command {
    Command::Append { batch: b, token: 0 }
}

/// A retried idempotent batch is stored once, a gap or a stale epoch is not
/// stored, and the producer state and leader epochs survive a reopen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_batches_are_stored_once_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let g = GroupId(5);
    let base = |b: &Bytes| i64::from_be_bytes(b[0..8].try_into().unwrap());
    {
        let engine = open_engine(dir.path());
        let (mut opened, reader) = engine.open_partition(g).unwrap();
        let cmds = vec![
            append(idempotent_batch(2, 1, 42, 0, 0)),
            append(idempotent_batch(2, 2, 42, 0, 0)), // retry of the first
            append(idempotent_batch(3, 3, 42, 0, 2)),
            append(idempotent_batch(1, 4, 42, 0, 9)), // gap: expected 5
            append(batch(1, 5)),                      // no idempotence: always stored
        ];
        apply_all(&engine, &mut opened, 1, 1, cmds).await;
        assert_eq!(reader.high_watermark(), 6, "2 + 3 + 1 records, the retry and the gap not stored");
        assert_eq!(reader.read(0, usize::MAX).unwrap().iter().map(base).collect::<Vec<_>>(), vec![0, 2, 5]);
        assert_eq!(reader.epoch_end_offset(1), Some((1, 6)));
    }
    let engine = open_engine(dir.path());
    let (mut opened, reader) = engine.open_partition(g).unwrap();
    let cmds = vec![
        append(idempotent_batch(3, 6, 42, 0, 2)), // retry after the restart
        append(idempotent_batch(1, 7, 42, 0, 5)),
        append(idempotent_batch(1, 8, 42, 1, 0)), // a new epoch starts at 0
        append(idempotent_batch(1, 9, 42, 0, 6)), // the old epoch is fenced
    ];
    apply_all(&engine, &mut opened, 3, 6, cmds).await;
    assert_eq!(reader.high_watermark(), 8);
    assert_eq!(reader.read(0, usize::MAX).unwrap().iter().map(base).collect::<Vec<_>>(), vec![0, 2, 5, 6, 7]);
    // Epoch 1 wrote offsets 0..6, epoch 3 from 6 on; 2 never wrote.
    assert_eq!(reader.epoch_end_offset(0), None);
    assert_eq!(reader.epoch_end_offset(2), Some((1, 6)));
    assert_eq!(reader.epoch_end_offset(3), Some((3, 8)));
    assert_eq!(reader.epoch_end_offset(9), Some((3, 8)));
}

/// A trim moves the log start on apply, drops only whole batches below it,
/// never moves back or past the high watermark, and survives a reopen; the
/// retained size follows, and retention's trim point reads the index.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trims_move_the_log_start_and_keep_offsets() {
    use chronik::log::retention::Retention;
    let dir = tempfile::tempdir().unwrap();
    let g = GroupId(9);
    let base = |b: &Bytes| i64::from_be_bytes(b[0..8].try_into().unwrap());
    let (one, size) = (batch(3, 0).len() as u64, 4 * batch(3, 0).len() as u64);
    {
        let engine = open_engine(dir.path());
        let (mut opened, reader) = engine.open_partition(g).unwrap();
        // Batches at offsets 0, 3, 6, 9, with timestamps 100..400.
        let cmds = (1..=4).map(|i| append(batch(3, i * 100))).collect();
        apply_all(&engine, &mut opened, 1, 1, cmds).await;
        assert_eq!((reader.log_start_offset(), reader.high_watermark(), reader.retained_bytes()), (0, 12, size));
        let rule = Retention { ms: Some(1000), bytes: None };
        assert_eq!(reader.trim_point(&rule, 1250).unwrap(), Some(6), "batches with newest record before 250 go");
        assert_eq!(reader.trim_point(&Retention { ms: None, bytes: Some(2 * one) }, 0).unwrap(), Some(6));
        // Offset 4 is inside the second batch: it stays, whole.
        apply_all(&engine, &mut opened, 1, 5, vec![Command::Trim { log_start_offset: 4 }]).await;
        assert_eq!(reader.log_start_offset(), 4);
        assert_eq!(reader.retained_bytes(), size - one);
        assert_eq!(reader.read(4, usize::MAX).unwrap().iter().map(base).collect::<Vec<_>>(), vec![3, 6, 9]);
        assert_eq!(reader.trim_point(&rule, 1250).unwrap(), Some(6), "from the log start on");
        // Backwards and beyond the end: clamped.
        apply_all(&engine, &mut opened, 1, 6, vec![Command::Trim { log_start_offset: 1 }]).await;
        assert_eq!(reader.log_start_offset(), 4);
        apply_all(&engine, &mut opened, 1, 7, vec![Command::Trim { log_start_offset: 7 }, append(batch(2, 500))]).await;
        assert_eq!((reader.log_start_offset(), reader.high_watermark()), (7, 14), "offsets go on where they were");
        assert_eq!(reader.read(7, usize::MAX).unwrap().iter().map(base).collect::<Vec<_>>(), vec![6, 9, 12]);
    }
    let engine = open_engine(dir.path());
    let (mut opened, reader) = engine.open_partition(g).unwrap();
    assert_eq!((reader.log_start_offset(), reader.high_watermark()), (7, 14), "persisted");
    assert_eq!(reader.retained_bytes(), 2 * one + batch(2, 0).len() as u64);
    apply_all(&engine, &mut opened, 2, 9, vec![Command::Trim { log_start_offset: 99 }]).await;
    assert_eq!((reader.log_start_offset(), reader.retained_bytes()), (14, 0), "never past the high watermark");
    assert!(reader.read(14, usize::MAX).unwrap().is_empty());
    assert_eq!(reader.batch_at_timestamp(0).unwrap(), None, "nothing below the log start is found by time");
    // A trim applied together with the appends it trims sees them.
    apply_all(&engine, &mut opened, 2, 10, vec![append(batch(2, 700)), append(batch(2, 800)), Command::Trim { log_start_offset: 16 }]).await;
    assert_eq!((reader.log_start_offset(), reader.high_watermark()), (16, 18));
    assert_eq!(reader.retained_bytes(), batch(2, 0).len() as u64);
    assert_eq!(reader.read(16, usize::MAX).unwrap().iter().map(base).collect::<Vec<_>>(), vec![16]);
    assert_eq!(reader.batch_locations(0, 10).unwrap().len(), 1, "the index holds the retained batch alone");
}

/// A closed segment's checkpoint becomes the snapshot once the log start
/// has passed it; a follower installing it holds no records, replays the
/// entries after it, and ends byte-identical to the leader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_below_the_log_start_become_snapshots_that_followers_replay_from() {
    use chronik::log::retention::SegmentRule;
    use openraft::storage::{RaftLogStorage, RaftSnapshotBuilder, RaftStateMachine};
    let (dir, fdir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let g = GroupId(11);
    let pid = 77;
    let leader = open_engine(dir.path());
    let (mut lo, lr) = leader.open_partition(g).unwrap();
    // Every apply that appends closes a segment.
    lr.set_segment_rule(SegmentRule { bytes: 1, ms: i64::MAX });
    // Entries 1-3: offsets 0..9, an idempotent producer among them.
    apply_all(&leader, &mut lo, 1, 1, vec![append(batch(3, 100)), append(idempotent_batch(3, 100, pid, 0, 0)), append(batch(3, 100))]).await;
    // Entry 4: offsets 9..12, the same producer.
    apply_all(&leader, &mut lo, 1, 4, vec![append(idempotent_batch(3, 200, pid, 0, 3))]).await;
    assert!(!lr.snapshot_due(), "nothing is below the log start yet");
    assert!(lo.sm.try_create_snapshot_builder(false).await.is_none(), "no snapshot may be built");
    // Entry 5: the log start passes the first checkpoint (at 3, next offset 9) only.
    apply_all(&leader, &mut lo, 1, 5, vec![Command::Trim { log_start_offset: 10 }]).await;
    assert!(lr.snapshot_due());
    let snap = lo.sm.try_create_snapshot_builder(false).await.expect("a due snapshot").build_snapshot().await.unwrap();
    assert_eq!(snap.meta.last_log_id.map(|l| l.index), Some(3), "the checkpoint below the log start, not the state now");
    assert!(!lr.snapshot_due());
    assert!(lo.sm.try_create_snapshot_builder(false).await.is_none(), "the checkpoint at 4 holds offset 9..12, still retained");
    assert_eq!(lo.sm.get_current_snapshot().await.unwrap().map(|s| s.meta), Some(snap.meta.clone()));
    lo.log.purge(snap.meta.last_log_id.unwrap()).await.unwrap();
    let wanted: Vec<Bytes> = lr.read(10, usize::MAX).unwrap();
    assert_eq!(wanted.len(), 1, "the retained batch is read after the purge");

    // A follower that lacked all of it.
    let follower = SledEngine::open(fdir.path(), 2, chronik::config::CACHE_BYTES_DEFAULT).unwrap();
    let (mut fo, fr) = follower.open_partition(g).unwrap();
    apply_all(&follower, &mut fo, 1, 1, vec![append(batch(1, 1))]).await; // its own, soon replaced
    fo.sm.install_snapshot(&snap.meta, snap.snapshot).await.unwrap();
    assert_eq!((fr.log_start_offset(), fr.high_watermark(), fr.retained_bytes()), (9, 9, 0), "no records, and none claimed");
    assert!(fr.read(0, usize::MAX).unwrap().is_empty());
    // Entries 4 and 5 arrive by append, as from the leader's log.
    apply_all(&follower, &mut fo, 1, 4, vec![append(idempotent_batch(3, 200, pid, 0, 3))]).await;
    apply_all(&follower, &mut fo, 1, 5, vec![Command::Trim { log_start_offset: 10 }]).await;
    assert_eq!((fr.log_start_offset(), fr.high_watermark(), fr.retained_bytes()), (lr.log_start_offset(), lr.high_watermark(), lr.retained_bytes()));
    assert_eq!(fr.read(10, usize::MAX).unwrap(), wanted, "byte-identical for what is retained");
    assert_eq!(fr.epoch_end_offset(1), lr.epoch_end_offset(1));
    // The producer state came with the snapshot: a retry of seq 3..5 is a duplicate on both.
    for (engine, opened, r) in [(&leader, &mut lo, &lr), (&follower, &mut fo, &fr)] {
        apply_all(engine, opened, 1, 6, vec![append(idempotent_batch(3, 300, pid, 0, 3))]).await;
        assert_eq!(r.high_watermark(), 12, "the retry is not stored again");
    }
    // Retention empties the log: a checkpoint at once, and a snapshot of all of it.
    apply_all(&leader, &mut lo, 1, 7, vec![Command::Trim { log_start_offset: 12 }]).await;
    assert!(lr.snapshot_due());
    let all = lo.sm.try_create_snapshot_builder(false).await.unwrap().build_snapshot().await.unwrap();
    assert_eq!(all.meta.last_log_id.map(|l| l.index), Some(7));
    // Reopened, the snapshot and checkpoints are found again.
    drop((lo, lr));
    let (mut lo, lr) = leader.open_partition(g).unwrap();
    assert!(!lr.snapshot_due());
    assert_eq!(lo.sm.get_current_snapshot().await.unwrap().map(|s| s.meta.last_log_id.map(|l| l.index)), Some(Some(7)));
}

/// Expired producers are forgotten on every replica alike: a batch of theirs
/// that would have been a duplicate is a new producer's first batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_producers_are_forgotten() {
    let dir = tempfile::tempdir().unwrap();
    let g = GroupId(12);
    let engine = open_engine(dir.path());
    let (mut opened, reader) = engine.open_partition(g).unwrap();
    apply_all(&engine, &mut opened, 1, 1, vec![append(idempotent_batch(2, 100, 1, 0, 0)), append(idempotent_batch(2, 500, 2, 0, 0))]).await;
    assert_eq!(reader.oldest_producer_timestamp().unwrap(), Some(100));
    apply_all(&engine, &mut opened, 1, 3, vec![Command::ExpireProducers { last_before_ms: 300 }]).await;
    assert_eq!(reader.oldest_producer_timestamp().unwrap(), Some(500), "producer 1 is gone, 2 stays");
    // Producer 2's retry is still a duplicate; producer 1's is stored anew.
    apply_all(&engine, &mut opened, 1, 4, vec![append(idempotent_batch(2, 500, 2, 0, 0)), append(idempotent_batch(2, 100, 1, 0, 0))]).await;
    assert_eq!(reader.high_watermark(), 6);
    // Forgotten across a reopen too.
    drop((opened, reader));
    let (_, reader) = engine.open_partition(g).unwrap();
    assert_eq!(reader.oldest_producer_timestamp().unwrap(), Some(100), "producer 1 came back with its new batch");
}

/// Committed offsets and group records of an offsets partition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commands_commit_store_and_delete() {
    use chronik::offsets::{CommittedOffset, GroupCommand, GroupRecord};
    let dir = tempfile::tempdir().unwrap();
    let g = GroupId(9);
    let engine = open_engine(dir.path());
    let (mut opened, reader) = engine.open_partition(g).unwrap();
    let off = |o: i64| CommittedOffset { offset: o, leader_epoch: -1, metadata: String::new(), commit_timestamp_ms: 0 };
    let commit = |group: &str, o: i64| {
        Command::Group(GroupCommand::Commit { group: group.into(), offsets: vec![("t".into(), 0, off(o)), ("t".into(), 1, off(o + 1))] })
    };
    let record = GroupRecord { protocol_type: "consumer".into(), generation: 4, ..Default::default() };
    let cmds = vec![
        commit("a", 10),
        commit("ab", 20), // a name that extends another must not mix with it
        Command::Group(GroupCommand::Store { group: "a".into(), record: record.clone() }),
        commit("a", 11),
        commit("gone", 1),
        Command::Group(GroupCommand::Delete { group: "gone".into() }),
    ];
    apply_all(&engine, &mut opened, 1, 1, cmds).await;
    let a = reader.committed_offsets("a").unwrap();
    assert_eq!(a, vec![("t".to_string(), 0, off(11)), ("t".to_string(), 1, off(12))]);
    assert_eq!(reader.committed_offsets("ab").unwrap()[0].2.offset, 20);
    assert_eq!(reader.group_record("a").unwrap(), Some(record));
    assert_eq!(reader.group_record("ab").unwrap(), None);
    assert_eq!(reader.group_names().unwrap(), vec!["a".to_string(), "ab".to_string()]);
    assert!(reader.committed_offsets("gone").unwrap().is_empty());
    assert_eq!(reader.high_watermark(), 0, "group commands are not records");

    // A deleted topic's offsets go from every group; other topics' stay.
    let other = Command::Group(GroupCommand::Commit { group: "ab".into(), offsets: vec![("u".into(), 0, off(5)), ("tt".into(), 0, off(6))] });
    apply_all(&engine, &mut opened, 1, 7, vec![other]).await;
    assert_eq!(reader.committed_topics().unwrap().into_iter().collect::<Vec<_>>(), vec!["t", "tt", "u"]);
    apply_all(&engine, &mut opened, 1, 8, vec![Command::Group(GroupCommand::ForgetTopic { topic: "t".into() })]).await;
    assert!(reader.committed_offsets("a").unwrap().is_empty());
    let mut ab: Vec<(String, i32)> = reader.committed_offsets("ab").unwrap().into_iter().map(|(t, p, _)| (t, p)).collect();
    ab.sort();
    assert_eq!(ab, vec![("tt".to_string(), 0), ("u".to_string(), 0)]);
    assert_eq!(reader.group_record("a").unwrap(), Some(GroupRecord { protocol_type: "consumer".into(), generation: 4, ..Default::default() }), "the group itself stays");

    // Expiry: a group's record is stored with its time; an offset goes only
    // if it is still the commit the decision saw; a group left Empty
    // without offsets goes with them.
    let at = |ts: i64| CommittedOffset { commit_timestamp_ms: ts, ..off(1) };
    let cmds = vec![
        Command::Group(GroupCommand::StoreAt { group: "e".into(), record: GroupRecord::default(), at_ms: 500 }),
        Command::Group(GroupCommand::Commit { group: "e".into(), offsets: vec![("t".into(), 0, at(100)), ("t".into(), 1, at(100))] }),
        // A commit that raced the decision: partition 1 is newer than it saw.
        Command::Group(GroupCommand::Commit { group: "e".into(), offsets: vec![("t".into(), 1, at(900))] }),
        Command::Group(GroupCommand::ExpireOffsets { group: "e".into(), offsets: vec![("t".into(), 0, 100), ("t".into(), 1, 100)] }),
    ];
    apply_all(&engine, &mut opened, 1, 9, cmds).await;
    assert_eq!(reader.group_stored_at("e").unwrap(), Some(500));
    assert_eq!(reader.committed_offsets("e").unwrap(), vec![("t".to_string(), 1, at(900))]);
    assert!(reader.group_record("e").unwrap().is_some(), "offsets are left: the group stays");
    apply_all(&engine, &mut opened, 1, 13, vec![Command::Group(GroupCommand::ExpireOffsets { group: "e".into(), offsets: vec![("t".into(), 1, 900)] })]).await;
    assert!(reader.committed_offsets("e").unwrap().is_empty());
    assert_eq!((reader.group_record("e").unwrap(), reader.group_stored_at("e").unwrap()), (None, None), "an Empty group without offsets is gone");
}

/// A batch of one record whose value is `len` bytes of `fill`.
fn big_batch(len: usize, fill: u8) -> Bytes {
    fn varint(out: &mut Vec<u8>, v: i64) {
        let mut z = ((v << 1) ^ (v >> 63)) as u64;
        while z >= 0x80 {
            out.push((z as u8) | 0x80);
            z >>= 7;
        }
        out.push(z as u8);
    }
    let mut body = vec![0u8]; // attributes
    varint(&mut body, 0); // timestamp delta
    varint(&mut body, 0); // offset delta
    varint(&mut body, -1); // no key
    varint(&mut body, len as i64);
    body.extend(std::iter::repeat_n(fill, len));
    varint(&mut body, 0); // no headers
    let mut records = Vec::new();
    varint(&mut records, body.len() as i64);
    records.extend_from_slice(&body);
    let mut b = vec![0u8; 61];
    b[8..12].copy_from_slice(&((61 - 12 + records.len()) as i32).to_be_bytes());
    b[16] = 2;
    b[43..51].copy_from_slice(&(-1i64).to_be_bytes());
    b[51..53].copy_from_slice(&(-1i16).to_be_bytes());
    b[53..57].copy_from_slice(&(-1i32).to_be_bytes());
    b[57..61].copy_from_slice(&1i32.to_be_bytes());
    b.extend_from_slice(&records);
    let crc = crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    Bytes::from(b)
}

/// sled never fsyncs its blob files, so large batches must not produce any:
/// they are chunked, read back whole, and their chunks go with the entries
/// when the log is truncated or purged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_batches_are_chunked_not_blobbed() {
    use openraft::storage::RaftLogStorage;
    use openraft::testing::log_id;

    let dir = tempfile::tempdir().unwrap();
    let g = GroupId(11);
    let sizes: Vec<usize> = (0..24).map(|i| if i % 3 == 0 { 100 } else { 100_000 + i * 37_000 }).collect();
    let chunk_count = |engine: &SledEngine| engine.inner.db.open_tree("chunks").unwrap().len();
    let chunks_of = |len: usize| len.div_ceil(chunked::INLINE_MAX);
    let entry_len = |i: usize| chronik::log::batch::patched(big_batch(sizes[i], i as u8), 0, 1).len() + 64;
    {
        let engine = open_engine(dir.path());
        let (mut opened, reader) = engine.open_partition(g).unwrap();
        let cmds = sizes.iter().enumerate().map(|(i, n)| append(big_batch(*n, i as u8))).collect();
        apply_all(&engine, &mut opened, 1, 1, cmds).await;
        assert_eq!(reader.high_watermark(), 24);
        for (i, n) in sizes.iter().enumerate() {
            let got = reader.read(i as i64, 1).unwrap();
            let want = big_batch(*n, i as u8);
            assert_eq!(got[0][16..], want[16..], "batch {i} ({n} bytes) reads back whole");
        }
        assert!(chunk_count(&engine) >= (0..24).filter(|i| i % 3 != 0).map(|i| chunks_of(sizes[i])).sum::<usize>());
        // Entries 21..=24 go (truncate), then 1..=12 (purge).
        opened.log.truncate_after(Some(log_id::<TypeConfig>(1, 1, 20))).await.unwrap();
        opened.log.purge(log_id::<TypeConfig>(1, 1, 12)).await.unwrap();
        let left: usize = (12..20).map(|i| if sizes[i] > chunked::INLINE_MAX { chunks_of(entry_len(i)) } else { 0 }).sum();
        assert!(
            chunk_count(&engine).abs_diff(left) <= 8,
            "{} chunks left, about {left} expected (entry encoding adds a few bytes)",
            chunk_count(&engine)
        );
        engine.inner.flusher.flush().await.unwrap();
    }
    let blobs = std::fs::read_dir(dir.path().join("blobs")).map(|d| d.count()).unwrap_or(0);
    assert_eq!(blobs, 0, "sled wrote blob files");
    let engine = open_engine(dir.path());
    let (_, reader) = engine.open_partition(g).unwrap();
    for i in 12..20 {
        assert_eq!(reader.read(i as i64, 1).unwrap()[0][16..], big_batch(sizes[i], i as u8)[16..], "batch {i} after reopen");
    }
}

/// Replacing a chunked value leaves no chunks of the old one behind, within
/// one batch of writes and across batches.
#[test]
fn chunked_values_replace_and_remove_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open_engine(dir.path());
    let sm = &engine.inner.sm;
    let chunks = || engine.inner.db.open_tree("chunks").unwrap().len();
    let big = |b: u8, n: usize| vec![b; n];
    let mut w = sm.writes();
    w.insert(b"k", &big(1, 100_000)).unwrap();
    w.insert(b"k", &big(2, 70_000)).unwrap(); // replaces the staged one
    w.insert(b"kk", &big(3, 40_000)).unwrap(); // a key extending another
    w.commit().unwrap();
    assert_eq!(chunks(), 3 + 2);
    assert_eq!(sm.get(b"k").unwrap().unwrap(), big(2, 70_000));
    let mut w = sm.writes();
    w.insert(b"k", &big(4, 200_000)).unwrap();
    w.commit().unwrap();
    assert_eq!(chunks(), 7 + 2);
    assert_eq!(sm.get(b"k").unwrap().unwrap(), big(4, 200_000));
    assert_eq!(sm.get(b"kk").unwrap().unwrap(), big(3, 40_000));
    let mut w = sm.writes();
    w.insert(b"k", b"small").unwrap();
    w.commit().unwrap();
    assert_eq!(chunks(), 2);
    assert_eq!(&sm.get(b"k").unwrap().unwrap()[..], b"small");
    let mut w = sm.writes();
    w.remove(b"kk").unwrap();
    w.commit().unwrap();
    assert_eq!(chunks(), 0);
    assert_eq!(sm.get(b"kk").unwrap(), None);
}

/// A log with a hole in it is refused rather than handed to Raft, which
/// would replicate or apply around the missing entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_with_a_hole_is_refused() {
    use openraft::entry::RaftEntry;
    use openraft::storage::{RaftLogReader, RaftLogStorage};
    use openraft::testing::log_id;

    let dir = tempfile::tempdir().unwrap();
    let engine = open_engine(dir.path());
    let g = GroupId(13);
    let (mut opened, _) = engine.open_partition(g).unwrap();
    let entries: Vec<chronik::Entry> =
        (1..=5).map(|i| chronik::Entry::new_normal(log_id::<TypeConfig>(1, 1, i), append(batch(1, i as i64)))).collect();
    opened.log.append(entries, openraft::storage::IOFlushed::noop()).await.unwrap();
    assert_eq!(opened.log.try_get_log_entries(1..=5).await.unwrap().len(), 5);
    engine.inner.log.tree.remove(keys::log(g, 3)).unwrap();
    let err = opened.log.try_get_log_entries(1..=5).await.unwrap_err();
    assert!(err.to_string().contains("log entry after 2 is 4"), "{err}");
    assert_eq!(opened.log.try_get_log_entries(4..=5).await.unwrap().len(), 2, "the part after the hole still reads");
}

/// State stored in the older layouts still loads: cluster metadata in
/// bincode before it had dynamic broker configs (V1) and with them (V2), as
/// the controller's applied state and snapshot; a partition's snapshot with
/// its keyed records. bincode writes a struct as its fields in order, so
/// tuples give the old layouts. Today's metadata is JSON, so a field added
/// with a default reads what is stored now.
#[test]
fn state_in_older_layouts_still_decodes() {
    use crate::log_store::encode;
    use crate::state_machine::{SmState, SnapshotBody};
    use chronik::cluster::metadata::{ClusterMetadata, PartitionAssignment, Reassignment, TopicMeta};
    let mut md = ClusterMetadata { next_group: 7, next_producer_id: 3000, ..Default::default() };
    md.nodes.insert(1, chronik::NodeAddr { kafka_addr: "a:1".into(), raft_addr: "a:2".into() });
    md.producer_id_blocks.insert(1, 2000);
    let partitions = vec![PartitionAssignment::new(GroupId(3), vec![1, 2]), PartitionAssignment::new(GroupId(4), vec![2, 1])];
    let configs: std::collections::BTreeMap<String, String> = [("cleanup.policy".to_string(), "compact".to_string())].into();
    md.topics.insert("t".into(), TopicMeta { name: "t".into(), id: u128::MAX - 5, partitions: partitions.clone(), configs: configs.clone() });
    let old_topics: std::collections::BTreeMap<String, _> =
        [("t".to_string(), ("t".to_string(), u128::MAX - 5, partitions.iter().map(|p| (p.group, p.replicas.clone())).collect::<Vec<_>>(), configs))].into();
    let v1_md = (md.nodes.clone(), old_topics, md.next_group, md.next_placement, md.next_producer_id, md.producer_id_blocks.clone());
    let state = SmState { metadata: Some(md.clone()), next_offset: 5, log_start_offset: 2, ..Default::default() };
    let v1_state = (state.last_applied, state.membership.clone(), state.next_offset, state.log_start_offset, Some(v1_md.clone()));
    let decoded = SmState::decode(&encode(&v1_state).unwrap()).unwrap();
    assert_eq!((decoded.metadata.as_ref(), decoded.next_offset, decoded.log_start_offset), (Some(&md), 5, 2));
    let body = SnapshotBody::decode(&encode(&(v1_state, Vec::<(u8, Vec<u8>, Vec<u8>)>::new())).unwrap()).unwrap();
    assert_eq!(body.state.metadata, Some(md.clone()));
    // V2: the same in bincode, broker configs last.
    md.broker_configs.insert(None, [("log.retention.ms".to_string(), "5".to_string())].into());
    md.broker_configs.insert(Some(2), [("log.roll.ms".to_string(), "6".to_string())].into());
    let (n, t, g, p, i, b) = v1_md;
    let v2_state = (state.last_applied, state.membership.clone(), 5i64, 2i64, Some((n, t, g, p, i, b, md.broker_configs.clone())));
    assert_eq!(SmState::decode(&encode(&v2_state).unwrap()).unwrap().metadata, Some(md.clone()));
    let body = SnapshotBody::decode(&encode(&(v2_state, vec![(b'x', vec![1u8], vec![2u8])])).unwrap()).unwrap();
    assert_eq!((body.state.metadata, body.records.len()), (Some(md.clone()), 1));
    // A partition's: no metadata, keyed records after it.
    let records = vec![(b'P', vec![1, 2], vec![3, 4, 5])];
    let partition = (None::<chronik::LogId>, state.membership.clone(), 9i64, 4i64, None::<()>);
    let body = SnapshotBody::decode(&encode(&(partition, records.clone())).unwrap()).unwrap();
    assert_eq!((body.state.next_offset, body.state.metadata.is_none(), body.records), (9, true, records));
    // Today's round-trip, with a move in progress.
    md.topics.get_mut("t").unwrap().partitions[0].reassignment = Some(Reassignment { target: vec![2], original: vec![1, 2] });
    let now = SmState { metadata: Some(md.clone()), ..Default::default() };
    assert_eq!(SmState::decode(&encode(&now).unwrap()).unwrap().metadata, Some(md.clone()));
    let body = SnapshotBody { state: now, records: vec![] };
    assert_eq!(SnapshotBody::decode(&encode(&body).unwrap()).unwrap().state.metadata, Some(md));
}

/// A replica's cleaner runs the compaction job a `Command::Compact` leaves:
/// the log entries are rewritten in place, the latest record of each key
/// stays at its offset, a batch that loses every record keeps its offsets
/// but is no longer served, the high watermark does not move, the job is
/// done once. A follower sent the entries already compacted assigns the
/// same offsets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_rewrites_entries_in_place_and_keeps_offsets() {
    use chronik::log::batch;
    use chronik::log::testing::keyed_batch;
    let dir = tempfile::tempdir().unwrap();
    let engine = open_engine(dir.path());
    let (mut opened, reader) = engine.open_partition(GroupId(8)).unwrap();
    let batches = [
        keyed_batch(&[(Some("a"), Some("a1"), 0), (Some("b"), Some("b1"), 1)], 0),
        keyed_batch(&[(Some("a"), Some("a2"), 0), (Some("a"), Some("a3"), 1)], chronik::log::compression::LZ4),
        keyed_batch(&[(Some("b"), Some("b2"), 0)], 0),
        keyed_batch(&[(Some("c"), Some("c1"), 0)], 0),
    ];
    let mut cmds: Vec<Command> = batches.iter().map(|b| append(Bytes::from(b.clone()))).collect();
    // Offsets 0..6; the keys of 0..5 decide, the last batch stays as it is.
    cmds.push(Command::Compact { clean_from: 0, dirty_end: 5, tombstones_before_ms: 0, keys_max: 100, decompressed_bytes_max: 1 << 20 });
    apply_all(&engine, &mut opened, 1, 1, cmds).await;
    let before = batches.iter().map(|b| b.len() as u64).sum::<u64>();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while reader.compaction_view(i64::MAX).unwrap().pending {
        assert!(std::time::Instant::now() < deadline, "the job never finished");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(reader.high_watermark(), 6);
    let served = reader.read(0, usize::MAX).unwrap();
    let summary: Vec<(i64, i32, i32)> = served
        .iter()
        .map(|b| {
            let h = batch::parse_header(b).unwrap();
            (i64::from_be_bytes(b[0..8].try_into().unwrap()), h.record_count, h.last_offset_delta)
        })
        .collect();
    // a3 (offset 3) and b2 (4) are the latest of their keys: the first
    // batch (a1, b1) is empty and not served, the second keeps a3 alone.
    assert_eq!(summary, vec![(2, 1, 1), (4, 1, 0), (5, 1, 0)]);
    let view = reader.compaction_view(i64::MAX).unwrap();
    assert_eq!((view.cleaned_end, view.pending), (5, false));
    assert!(reader.retained_bytes() < before, "{} retained of {before}", reader.retained_bytes());
    // The rewritten entries, as a leader sends them, give a follower the same offsets.
    let stored: Vec<Bytes> = (1..=4u64)
        .map(|i| {
            let raw = engine.inner.log.get(&keys::log(GroupId(8), i)).unwrap().unwrap();
            let entry: chronik::Entry = crate::log_store::decode(&raw).unwrap();
            match entry.payload {
                openraft::EntryPayload::Normal(Command::Append { batch, .. }) => batch,
                _ => unreachable!(),
            }
        })
        .collect();
    assert_eq!(batch::parse_header(&stored[0]).unwrap().record_count, 0, "emptied, offsets kept");
    let (mut follower, freader) = engine.open_partition(GroupId(9)).unwrap();
    apply_all(&engine, &mut follower, 1, 1, stored.into_iter().map(append).collect()).await;
    assert_eq!(freader.high_watermark(), 6);
    assert_eq!(freader.read(0, usize::MAX).unwrap(), served, "byte for byte");
}

/// A trim of more batches than one sled batch takes (TRIM_BATCH_KEYS) lands
/// in pieces, and ends exactly as a small one does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trim_of_many_batches_lands_in_pieces() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open_engine(dir.path());
    let (mut opened, reader) = engine.open_partition(GroupId(12)).unwrap();
    let n = 5000u64;
    apply_all(&engine, &mut opened, 1, 1, (0..n).map(|i| append(batch(1, 1000 + i as i64))).collect()).await;
    let each = reader.retained_bytes() / n;
    apply_all(&engine, &mut opened, 1, n + 1, vec![Command::Trim { log_start_offset: 4500 }]).await;
    assert_eq!((reader.log_start_offset(), reader.high_watermark()), (4500, 5000));
    assert_eq!(reader.retained_bytes(), 500 * each);
    let got = reader.read(0, usize::MAX).unwrap();
    assert_eq!(got.len(), 500);
    assert_eq!(i64::from_be_bytes(got[0][0..8].try_into().unwrap()), 4500);
    assert_eq!(engine.inner.sm.tree.scan_prefix(keys::tag(GroupId(12), keys::INDEX)).count(), 500);
}

/// ListOffsets by timestamp reads from the time index: the first batch whose
/// newest timestamp is at or after the one asked for, also once retention
/// trimmed the batch the index entry names, and for a partition written
/// before time indexes existed (built when it is opened).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_time_index_finds_the_first_batch_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let g = GroupId(13);
    let base = |b: Option<Bytes>| b.map(|b| i64::from_be_bytes(b[0..8].try_into().unwrap()));
    {
        let engine = open_engine(dir.path());
        let (mut opened, reader) = engine.open_partition(g).unwrap();
        // Two records a batch: offsets 0, 2, 4, 6, 8; timestamps not in order.
        let ts = [1000, 900, 1100, 1050, 1200];
        apply_all(&engine, &mut opened, 1, 1, ts.iter().map(|t| append(batch(2, *t))).collect()).await;
        let at = |t: i64| base(reader.batch_at_timestamp(t).unwrap());
        assert_eq!([at(0), at(950), at(1000), at(1001), at(1150), at(1201)], [Some(0), Some(0), Some(0), Some(4), Some(8), None]);
        assert_eq!(engine.inner.sm.tree.scan_prefix(keys::tag(g, keys::TIME)).count(), 3, "entries where the newest grows");
        // Retention takes the first three batches: 1050 is now the first at 950.
        apply_all(&engine, &mut opened, 1, 6, vec![Command::Trim { log_start_offset: 6 }]).await;
        assert_eq!([at(950), at(1060), at(1201)], [Some(6), Some(8), None]);
        // As if written before the time index: it is rebuilt on opening.
        let old: Vec<_> = engine.inner.sm.tree.scan_prefix(keys::tag(g, keys::TIME)).keys().map(|k| k.unwrap()).collect();
        for k in old {
            engine.inner.sm.tree.remove(k).unwrap();
        }
    }
    let engine = open_engine(dir.path());
    let (_, reader) = engine.open_partition(g).unwrap();
    assert_eq!(base(reader.batch_at_timestamp(950).unwrap()), Some(6));
    assert_eq!(base(reader.batch_at_timestamp(1201).unwrap()), None);
}
