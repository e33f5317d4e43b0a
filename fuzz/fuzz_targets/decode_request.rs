//! Fuzz target: one input is one Kafka request frame (without its 4-byte
//! length). It is decoded as the server decodes it, and a Produce's record
//! batches are validated as the broker validates them
//! (`chronik_kafka::fuzzing::one_input`).
//!
//! Besides crashes, the allocator below turns into a crash any input that
//! makes the decoder hold much more memory than the input's size: a single
//! allocation or the bytes live at once over `ALLOC_FACTOR x input +
//! ALLOC_FIXED_BYTES` (the fixed part covers the decompressors' windows:
//! lz4 blocks of up to 4 MiB, zstd windows of up to 16 MiB).
#![no_main]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

use libfuzzer_sys::fuzz_target;

const ALLOC_FACTOR: usize = 48;
const ALLOC_FIXED_BYTES: usize = 24 << 20;

thread_local! {
    /// Set while the target runs on this thread.
    static ARMED: Cell<bool> = const { Cell::new(false) };
}
static LIMIT: AtomicUsize = AtomicUsize::new(usize::MAX);
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

struct Bounded;

fn report(what: &[u8], bytes: usize) {
    let msg = format!("==chronik-fuzz== {} of {bytes} bytes exceeds the bound of {} for this input\n", String::from_utf8_lossy(what), LIMIT.load(Ordering::Relaxed));
    // No allocation may be attempted here beyond this one message.
    unsafe { libc_write(msg.as_ptr(), msg.len()) };
}

extern "C" {
    fn write(fd: i32, buf: *const u8, count: usize) -> isize;
}
unsafe fn libc_write(p: *const u8, n: usize) {
    let _ = write(2, p, n);
}

unsafe impl GlobalAlloc for Bounded {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if ARMED.with(|a| a.get()) {
            let limit = LIMIT.load(Ordering::Relaxed);
            let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
            if layout.size() > limit || live > limit {
                ARMED.with(|a| a.set(false));
                report(if layout.size() > limit { b"an allocation" } else { b"memory live at once" }, layout.size().max(live));
                // Refused: Rust aborts, and libFuzzer keeps the input.
                return std::ptr::null_mut();
            }
        }
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if ARMED.with(|a| a.get()) {
            LIVE.fetch_sub(layout.size().min(LIVE.load(Ordering::Relaxed)), Ordering::Relaxed);
        }
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOC: Bounded = Bounded;

fuzz_target!(|data: &[u8]| {
    LIMIT.store(ALLOC_FACTOR * data.len() + ALLOC_FIXED_BYTES, Ordering::Relaxed);
    LIVE.store(0, Ordering::Relaxed);
    ARMED.with(|a| a.set(true));
    chronik_kafka::fuzzing::one_input(data);
    ARMED.with(|a| a.set(false));
});
