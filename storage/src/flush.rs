//! Group commit: appends of every group are written to sled first, then their
//! callbacks queue here; one thread flushes the database once for all that
//! queued meanwhile and only then reports them durable.
//!
//! One device flush per group commit: sled's flush writes its IO buffer and
//! fdatasyncs the db file (vendored sled; upstream's `sync_file_range` did
//! not survive power loss, which is why this used to fsync the db file and
//! the directory again after every flush). fdatasync covers the data and
//! the file size needed to read it back; the directory entry of the db file
//! is made durable once, when the database is opened (`SledEngine::open`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use chronik::TypeConfig;
use openraft::storage::IOFlushed;
use tracing::error;

pub enum Waiter {
    Raft(IOFlushed<TypeConfig>),
    Notify(tokio::sync::oneshot::Sender<std::io::Result<()>>),
}

#[derive(Debug, Default, Clone, Copy)]
pub struct FlushStats {
    pub flushes: u64,
    pub waiters: u64,
    pub flush_nanos_total: u64,
}

/// Told of every flush: how long it took and how many writers it served.
pub type FlushObserver = Box<dyn Fn(Duration, usize) + Send + Sync>;

#[derive(Default)]
struct Counters {
    flushes: AtomicU64,
    waiters: AtomicU64,
    nanos: AtomicU64,
    observer: OnceLock<FlushObserver>,
}

pub struct Flusher {
    /// None only while dropping.
    tx: Option<mpsc::Sender<Waiter>>,
    thread: Option<std::thread::JoinHandle<()>>,
    counters: Arc<Counters>,
}

impl Drop for Flusher {
    /// Stops the thread once it has served every waiter, so the database
    /// (and its lock) is released when the engine is dropped.
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Flusher {
    pub fn start(db: sled::Db) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel::<Waiter>();
        let counters = Arc::new(Counters::default());
        let c = counters.clone();
        let thread = std::thread::Builder::new().name("chronik-flusher".into()).spawn(move || {
            while let Ok(first) = rx.recv() {
                let mut waiters = vec![first];
                waiters.extend(rx.try_iter());
                let started = Instant::now();
                let result = db.flush().map(|_| ()).map_err(std::io::Error::other);
                let took = started.elapsed();
                c.flushes.fetch_add(1, Ordering::Relaxed);
                c.waiters.fetch_add(waiters.len() as u64, Ordering::Relaxed);
                c.nanos.fetch_add(took.as_nanos() as u64, Ordering::Relaxed);
                if let Some(observe) = c.observer.get() {
                    observe(took, waiters.len());
                }
                if let Err(e) = &result {
                    error!(error = %e, waiters = waiters.len(), "flush failed; writes are not durable");
                }
                for w in waiters {
                    let r = result.as_ref().map(|_| ()).map_err(|e| std::io::Error::new(e.kind(), e.to_string()));
                    match w {
                        Waiter::Raft(cb) => cb.io_completed(r),
                        Waiter::Notify(tx) => {
                            let _ = tx.send(r);
                        }
                    }
                }
            }
        })?;
        Ok(Self { tx: Some(tx), thread: Some(thread), counters })
    }

    /// Reports `cb` durable after the next flush (writes made before this call
    /// are covered by it).
    pub fn after_flush(&self, cb: IOFlushed<TypeConfig>) {
        if let Err(mpsc::SendError(Waiter::Raft(cb))) = self.sender().send(Waiter::Raft(cb)) {
            cb.io_completed(Err(std::io::Error::other("flusher stopped")));
        }
    }

    /// Waits until everything written before this call is durable.
    pub async fn flush(&self) -> std::io::Result<()> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.sender().send(Waiter::Notify(tx)).map_err(|_| std::io::Error::other("flusher stopped"))?;
        rx.await.map_err(|_| std::io::Error::other("flusher stopped"))?
    }

    fn sender(&self) -> &mpsc::Sender<Waiter> {
        self.tx.as_ref().expect("flusher used while dropping")
    }

    /// Sets the observer of every flush (once; later calls are ignored).
    pub fn observe(&self, observer: FlushObserver) {
        let _ = self.counters.observer.set(observer);
    }

    pub fn stats(&self) -> FlushStats {
        FlushStats {
            flushes: self.counters.flushes.load(Ordering::Relaxed),
            waiters: self.counters.waiters.load(Ordering::Relaxed),
            flush_nanos_total: self.counters.nanos.load(Ordering::Relaxed),
        }
    }
}
