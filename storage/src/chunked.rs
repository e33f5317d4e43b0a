//! Values of any size without sled's blob files.
//!
//! sled 0.34 writes a page whose serialized form is larger than a quarter
//! segment into a file of its own under `blobs/`, and never fsyncs that file:
//! after a power loss the synced log points at a blob that never reached the
//! disk, and every key of that page (up to 16 log entries, acknowledged ones
//! among them) is unreadable. So no page may grow that large here. Values
//! above [`INLINE_MAX`] are cut into chunks of at most that size, kept in the
//! `chunks` tree; a leaf holds about 16 items (sled's split rule), so with
//! [`SEGMENT_SIZE`] no page comes near the blob threshold.
//!
//! A stored value is a tag byte and then either the value itself or, for a
//! chunked value, a nonce and its length. Chunks live at
//! `tree id ++ key ++ nonce ++ chunk number`; a fresh nonce per write means a
//! value being replaced stays readable until its replacement is in place.
//! [`Writes::commit`] lands new chunks, then the main batch, then removes the
//! replaced chunks: sled recovers a prefix of its writes, so a crash at any
//! point leaves every key readable (at worst, some unreferenced chunks).

use std::collections::HashMap;
use std::io;

use sled::{Batch, IVec};

/// sled's segment (and IO buffer) size; pages above a quarter of it would be
/// written as blobs.
pub(crate) const SEGMENT_SIZE: usize = 4 << 20;
/// The largest value stored inline, and the size of a chunk.
pub(crate) const INLINE_MAX: usize = 32 << 10;

const INLINE: u8 = 0;
const CHUNKED: u8 = 1;
/// nonce (8 bytes) ++ chunk number (4 bytes).
const CHUNK_SUFFIX: usize = 12;

fn corrupt(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

/// Keys removed per sled batch by [`Chunked::remove_prefix`].
pub const REMOVE_BATCH_KEYS: usize = 4096;
/// A bulk removal logs its progress every this many keys.
pub const REMOVE_PROGRESS_EVERY: u64 = 100_000;

/// A sled tree whose values may be larger than a page may be.
#[derive(Clone)]
pub(crate) struct Chunked {
    /// The main tree. Keys may be read from it directly; values only through
    /// [`Chunked::resolve`] or [`Chunked::inline`].
    pub tree: sled::Tree,
    chunks: sled::Tree,
    db: sled::Db,
    id: u8,
}

impl Chunked {
    /// `id` tells this tree's chunks from other trees' in the shared `chunks` tree.
    pub fn open(db: &sled::Db, name: &str, id: u8, chunks: &sled::Tree) -> io::Result<Self> {
        let tree = db.open_tree(name).map_err(io::Error::other)?;
        Ok(Self { tree, chunks: chunks.clone(), db: db.clone(), id })
    }

    /// `id ++ key`: the prefix of every chunk of `key`.
    fn chunk_prefix(&self, key: &[u8]) -> Vec<u8> {
        let mut k = Vec::with_capacity(1 + key.len() + CHUNK_SUFFIX);
        k.push(self.id);
        k.extend_from_slice(key);
        k
    }

    pub fn get(&self, key: &[u8]) -> io::Result<Option<IVec>> {
        match self.tree.get(key).map_err(io::Error::other)? {
            Some(stored) => self.resolve(key, stored).map(Some),
            None => Ok(None),
        }
    }

    /// The value behind `stored`, as read from the main tree at `key`.
    pub fn resolve(&self, key: &[u8], stored: IVec) -> io::Result<IVec> {
        match stored.first() {
            Some(&INLINE) => Ok(stored.subslice(1, stored.len() - 1)),
            Some(&CHUNKED) if stored.len() == 17 => {
                let nonce = &stored[1..9];
                let len = u64::from_be_bytes(stored[9..17].try_into().expect("8 bytes")) as usize;
                let mut prefix = self.chunk_prefix(key);
                prefix.extend_from_slice(nonce);
                let mut out = Vec::with_capacity(len);
                for kv in self.chunks.scan_prefix(&prefix) {
                    let (k, v) = kv.map_err(io::Error::other)?;
                    if k.len() == prefix.len() + 4 {
                        out.extend_from_slice(&v);
                    }
                }
                if out.len() != len {
                    return Err(corrupt(format!("value at {key:02x?} has {} of its {len} bytes", out.len())));
                }
                Ok(out.into())
            }
            _ => Err(corrupt(format!("value at {key:02x?} has no valid tag"))),
        }
    }

    /// A value that is never chunked, read without a copy.
    pub fn inline(stored: &[u8]) -> io::Result<&[u8]> {
        match stored.split_first() {
            Some((&INLINE, v)) => Ok(v),
            _ => Err(corrupt("a small value is not stored inline".into())),
        }
    }

    pub fn writes(&self) -> Writes<'_> {
        Writes {
            t: self,
            main: Batch::default(),
            new_chunks: Batch::default(),
            old_chunks: Batch::default(),
            staged: HashMap::new(),
            chunk_writes: 0,
        }
    }

    /// Removes every key starting with `prefix`, with its chunks, in batches
    /// of [`REMOVE_BATCH_KEYS`] (a deleted topic can hold millions of keys:
    /// one batch would hold them all in memory and sled's write lock for
    /// long). Values go first, then their chunks, so an interrupted removal
    /// leaves no value without its chunks. Calls `progress` with the count so
    /// far every [`REMOVE_PROGRESS_EVERY`] keys. Returns the keys removed.
    pub fn remove_prefix(&self, prefix: &[u8], progress: impl Fn(u64)) -> io::Result<u64> {
        let mut removed = 0u64;
        for tree in [&self.tree, &self.chunks] {
            let scan = if std::ptr::eq(tree, &self.chunks) { self.chunk_prefix(prefix) } else { prefix.to_vec() };
            loop {
                let mut batch = Batch::default();
                let mut n = 0;
                for k in tree.scan_prefix(&scan).keys().take(REMOVE_BATCH_KEYS) {
                    batch.remove(k.map_err(io::Error::other)?);
                    n += 1;
                }
                if n == 0 {
                    break;
                }
                tree.apply_batch(batch).map_err(io::Error::other)?;
                let before = removed;
                removed += n as u64;
                if before / REMOVE_PROGRESS_EVERY != removed / REMOVE_PROGRESS_EVERY {
                    progress(removed);
                }
            }
        }
        Ok(removed)
    }

    /// Keys of committed chunks of exactly `key` (not of longer keys that
    /// start with it: theirs are longer).
    fn committed_chunks(&self, key: &[u8]) -> io::Result<Vec<IVec>> {
        let prefix = self.chunk_prefix(key);
        let mut out = Vec::new();
        for k in self.chunks.scan_prefix(&prefix).keys() {
            let k = k.map_err(io::Error::other)?;
            if k.len() == prefix.len() + CHUNK_SUFFIX {
                out.push(k);
            }
        }
        Ok(out)
    }
}

/// Writes to one [`Chunked`] tree, landed together by [`Writes::commit`].
pub(crate) struct Writes<'a> {
    t: &'a Chunked,
    main: Batch,
    new_chunks: Batch,
    old_chunks: Batch,
    /// Chunk keys staged in `new_chunks`, by key: a later write of the same
    /// key in this batch drops them.
    staged: HashMap<Vec<u8>, Vec<Vec<u8>>>,
    chunk_writes: usize,
}

impl Writes<'_> {
    /// Stores `value` (of any size) at `key`, replacing what was there.
    pub fn insert(&mut self, key: &[u8], value: &[u8]) -> io::Result<()> {
        self.forget(key)?;
        if value.len() <= INLINE_MAX {
            self.main.insert(key, tagged(value));
            return Ok(());
        }
        let nonce = self.t.db.generate_id().map_err(io::Error::other)?.to_be_bytes();
        let mut keys = Vec::new();
        for (n, chunk) in value.chunks(INLINE_MAX).enumerate() {
            let mut k = self.t.chunk_prefix(key);
            k.extend_from_slice(&nonce);
            k.extend_from_slice(&(n as u32).to_be_bytes());
            self.new_chunks.insert(k.as_slice(), chunk);
            keys.push(k);
        }
        self.chunk_writes += keys.len();
        self.staged.insert(key.to_vec(), keys);
        let mut stored = Vec::with_capacity(17);
        stored.push(CHUNKED);
        stored.extend_from_slice(&nonce);
        stored.extend_from_slice(&(value.len() as u64).to_be_bytes());
        self.main.insert(key, stored);
        Ok(())
    }

    /// Stores a value that is small by construction at a key that never held
    /// a large one, without looking for chunks to replace.
    pub fn insert_small(&mut self, key: &[u8], value: &[u8]) {
        assert!(value.len() <= INLINE_MAX, "a small value of {} bytes", value.len());
        self.main.insert(key, tagged(value));
    }

    /// Removes a key that only ever held small values (see [`Self::insert_small`]).
    pub fn remove_small(&mut self, key: &[u8]) {
        self.main.remove(key);
    }

    pub fn remove(&mut self, key: &[u8]) -> io::Result<()> {
        self.forget(key)?;
        self.main.remove(key);
        Ok(())
    }

    /// Removes every key in `from..=to`, with their chunks. The keys of this
    /// tree in that range must all be as long as `from` and `to`.
    pub fn remove_range(&mut self, from: &[u8], to: &[u8]) -> io::Result<()> {
        debug_assert_eq!(from.len(), to.len());
        for k in self.t.tree.range(from..=to).keys() {
            self.main.remove(k.map_err(io::Error::other)?);
        }
        let mut end = self.t.chunk_prefix(to);
        end.extend_from_slice(&[0xff; CHUNK_SUFFIX]);
        for k in self.t.chunks.range(self.t.chunk_prefix(from)..=end).keys() {
            let k = k.map_err(io::Error::other)?;
            if k.len() == 1 + from.len() + CHUNK_SUFFIX {
                self.old_chunks.remove(k);
                self.chunk_writes += 1;
            }
        }
        let staged: Vec<Vec<u8>> = self.staged.keys().filter(|k| from <= k.as_slice() && k.as_slice() <= to).cloned().collect();
        for k in staged {
            self.drop_staged(&k);
        }
        Ok(())
    }

    fn drop_staged(&mut self, key: &[u8]) {
        for k in self.staged.remove(key).unwrap_or_default() {
            self.new_chunks.remove(k);
        }
    }

    /// Schedules the removal of `key`'s chunks, committed and staged.
    fn forget(&mut self, key: &[u8]) -> io::Result<()> {
        self.drop_staged(key);
        for k in self.t.committed_chunks(key)? {
            self.old_chunks.remove(k);
            self.chunk_writes += 1;
        }
        Ok(())
    }

    /// Lands everything: new chunks, then the main tree, then the removal of
    /// replaced chunks (see the module docs for why in this order).
    pub fn commit(self) -> io::Result<()> {
        let chunked = self.chunk_writes > 0;
        if chunked {
            self.t.chunks.apply_batch(self.new_chunks).map_err(io::Error::other)?;
        }
        self.t.tree.apply_batch(self.main).map_err(io::Error::other)?;
        if chunked {
            self.t.chunks.apply_batch(self.old_chunks).map_err(io::Error::other)?;
        }
        Ok(())
    }

    /// Lands what is staged so far and carries on with an empty batch.
    pub fn commit_so_far(&mut self) -> io::Result<()> {
        let t = self.t;
        std::mem::replace(self, t.writes()).commit()
    }
}

fn tagged(value: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(1 + value.len());
    v.push(INLINE);
    v.extend_from_slice(value);
    v
}
