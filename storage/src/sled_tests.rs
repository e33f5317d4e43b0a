//! The vendored sled's patches (vendor/README.md), tested through sled's
//! own API: what they change and that everything still reads back after
//! reopening.

use std::os::unix::fs::MetadataExt;

/// Blocks the database file holds on disk (holes punched out excluded).
fn allocated(dir: &std::path::Path) -> u64 {
    std::fs::metadata(dir.join("db")).unwrap().blocks() * 512
}

/// Waits (at most 30 s: under parallel tests sled's deferred work can lag)
/// until sled's background cleaner has nothing queued.
fn cleaned(db: &sled::Db) -> sled::SegmentStats {
    for _ in 0..300 {
        let s = db.segment_stats();
        if s.draining == 0 && s.cleaner_queue == 0 && s.pending_free == 0 {
            return s;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    db.segment_stats()
}

/// The vendored sled splits a leaf written near its end at the end, with a
/// split link instead of a rewrite of the left part, and consolidates pages
/// later (vendor/README.md). Logs that grow at their ends, keys overwritten
/// in place, inserts in the middle and removals from the front must all read
/// back the same, from the cache and, with a tiny cache, from the chains of
/// links on disk after reopening.
#[test]
fn sled_split_links_read_back_across_reopen() {
    use std::collections::BTreeMap;
    let dir = tempfile::tempdir().unwrap();
    let open = || sled::Config::new().path(dir.path()).segment_size(1 << 20).cache_capacity(256 << 10).open().unwrap();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let key = |log: u64, i: u64| [log.to_be_bytes(), i.to_be_bytes()].concat();
    let mut model = BTreeMap::new();
    let check = |db: &sled::Db, model: &BTreeMap<Vec<u8>, Vec<u8>>| {
        let t = db.open_tree("t").unwrap();
        let stored: Vec<(Vec<u8>, Vec<u8>)> = t.iter().map(|kv| kv.map(|(k, v)| (k.to_vec(), v.to_vec())).unwrap()).collect();
        let expected: Vec<(Vec<u8>, Vec<u8>)> = model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        assert_eq!(stored.len(), expected.len());
        assert!(stored == expected, "the tree differs from what was written");
        for (k, v) in model.iter().step_by(7) {
            assert_eq!(t.get(k).unwrap().as_deref(), Some(&v[..]));
        }
    };
    for round in 0..3u64 {
        let db = open();
        let t = db.open_tree("t").unwrap();
        for i in 0..400 {
            let i = round * 400 + i;
            for log in 0..6 {
                // An append, sometimes read back at once (as a Raft log is).
                let v = vec![(i + log) as u8; 200 + (next() % 12_000) as usize];
                t.insert(key(log, i), v.clone()).unwrap();
                model.insert(key(log, i), v);
                if next() % 3 == 0 {
                    assert!(t.get(key(log, i)).unwrap().is_some());
                }
            }
            // A key past each log, overwritten in place (applied state).
            let state = (i as u32).to_be_bytes().repeat(8);
            t.insert(key(6, u64::MAX), state.clone()).unwrap();
            model.insert(key(6, u64::MAX), state);
            // Inserts in the middle of one log, removals at the front of another.
            if i % 5 == 0 {
                let k = [key(0, next() % (i + 1)), vec![1]].concat();
                t.insert(k.clone(), vec![9; 300]).unwrap();
                model.insert(k, vec![9; 300]);
            }
            if i % 2 == 0 && i >= 100 {
                t.remove(key(1, i / 2 - 50)).unwrap();
                model.remove(&key(1, i / 2 - 50));
            }
        }
        check(&db, &model);
        db.flush().unwrap();
        drop((t, db));
        check(&open(), &model);
    }
}

/// A log removed from its front gives its disk space back (vendored sled:
/// the cleaner skips emptied segments and freed segments are punched out of
/// the file, vendor/README.md), and what remains reads back after reopening.
#[test]
fn sled_gives_freed_segments_back_to_the_filesystem() {
    let dir = tempfile::tempdir().unwrap();
    let open = || sled::Config::new().path(dir.path()).segment_size(1 << 20).cache_capacity(4 << 20).open().unwrap();
    let allocated = || allocated(dir.path());
    let value = |i: u64| vec![(i % 251) as u8; 8 << 10];
    let (kept, total) = (256u64, 8192u64);
    let db = open();
    let t = db.open_tree("log").unwrap();
    let mut most = 0;
    for i in 0..total {
        t.insert(i.to_be_bytes(), value(i)).unwrap();
        if i >= kept {
            t.remove((i - kept).to_be_bytes()).unwrap();
        }
        if i % 64 == 0 {
            db.flush().unwrap();
            most = most.max(allocated());
        }
    }
    db.flush().unwrap();
    let stats = cleaned(&db);
    let written = total * (8 << 10);
    let retained = kept * (8 << 10);
    assert!(stats.free > 0, "no segment was freed: {stats:?}");
    // 64 MiB written, 2 MiB retained. (A single log removed in order also
    // frees the file's tip, which upstream truncates; `make soak`, with
    // several trees, is what shows the hole punching.)
    assert!(most < written / 4, "the file held {most} bytes at most for {retained} retained of {written} written: {stats:?}");
    drop(t);
    drop(db);
    let db = open();
    let t = db.open_tree("log").unwrap();
    assert_eq!(t.len() as u64, kept);
    for i in total - kept..total {
        assert_eq!(t.get(i.to_be_bytes()).unwrap().as_deref(), Some(&value(i)[..]), "key {i}");
    }
}

/// Several logs written side by side, as a node's partitions are, fill one
/// file together. After a burst, retention removes most of each from its
/// front: the segments that frees lie in the middle of the file, below the
/// newest data, so upstream sled (which gives space back only at the file's
/// end) kept the burst's size for good. Here they are punched out of the
/// file, segments drained into a segment still being written are freed as
/// soon as the copies are durable, and live pages are not shuffled towards
/// the front of the file (vendor/README.md). Everything retained reads back
/// after reopening.
#[test]
fn interleaved_logs_give_a_burst_back_after_retention() {
    let dir = tempfile::tempdir().unwrap();
    let open = || sled::Config::new().path(dir.path()).segment_size(1 << 20).cache_capacity(4 << 20).open().unwrap();
    let value = |log: u64, i: u64| vec![(i * 7 + log) as u8; 6 << 10];
    let key = |log: u64, i: u64| [log.to_be_bytes(), i.to_be_bytes()].concat();
    let (logs, burst, kept) = (4u64, 2048u64, 64u64);
    let db = open();
    let t = db.open_tree("log").unwrap();
    let state = db.open_tree("state").unwrap();
    for i in 0..burst {
        for log in 0..logs {
            t.insert(key(log, i), value(log, i)).unwrap();
            state.insert(log.to_be_bytes(), &i.to_be_bytes()).unwrap();
        }
        if i % 32 == 0 {
            db.flush().unwrap();
        }
    }
    db.flush().unwrap();
    let burst_bytes = allocated(dir.path());
    // Retention: each log keeps its newest `kept` values, removed in order.
    for i in 0..burst - kept {
        for log in 0..logs {
            t.remove(key(log, i)).unwrap();
        }
        if i % 64 == 0 {
            db.flush().unwrap();
        }
    }
    // Writing goes on, as a live node's does: segments drained near the end
    // of the log are reused only once the log has moved past them (sled's
    // unstable tail), so it must move on a few segments.
    let trickle = 512;
    for i in burst..burst + trickle {
        for log in 0..logs {
            t.insert(key(log, i), value(log, i)).unwrap();
            t.remove(key(log, i - kept)).unwrap();
        }
        if i % 8 == 0 {
            db.flush().unwrap();
        }
    }
    db.flush().unwrap();
    let stats = cleaned(&db);
    let retained = logs * kept * (6 << 10);
    let after = allocated(dir.path());
    assert!(burst_bytes > 40 << 20, "the burst took only {burst_bytes} bytes");
    // 1.5 MiB retained; at most its double plus 4 segments (being written or
    // not yet drained) may stay.
    assert!(after <= 2 * retained + (4 << 20), "{after} bytes on disk for {retained} retained after a burst of {burst_bytes}: {stats:?}");
    drop((t, state));
    drop(db);
    let db = open();
    let t = db.open_tree("log").unwrap();
    assert_eq!(t.len() as u64, logs * kept);
    for log in 0..logs {
        for i in burst + trickle - kept..burst + trickle {
            assert_eq!(t.get(key(log, i)).unwrap().as_deref(), Some(&value(log, i)[..]), "log {log} key {i}");
        }
    }
}
