//! Recycled COPY buffers: a backup lane fills ~1 MiB buffers that become segments of the backup
//! format; once a segment is compressed its buffer comes back here for the next fill.
//!
//! Why: a fresh 1 MiB allocation is fresh memory. glibc hands large blocks back to the kernel
//! when they are freed (a thread arena trims its top, an `mmap`ed block is unmapped), so each new
//! buffer cost 256 page faults, a zeroed page each, before the first row landed in it. On a
//! pgbench backup that was about 30,000 faults in our process and ~5% of its CPU
//! (docs/BENCHMARKS.md, session 7). With recycling a backup's lanes cycle through a handful of
//! buffers.
//!
//! The pool is process-wide and small ([`MAX_POOLED`] buffers of [`POOLED_BYTES`], about 8.5 MiB
//! at most, held between backups too). Only buffers nobody else references and whose capacity is
//! close to [`POOLED_BYTES`] are kept; anything else is simply dropped.

use std::sync::Mutex;

use bytes::{Bytes, BytesMut};

/// Capacity of a pooled buffer: a COPY lane's 1 MiB plus room for a row that runs over.
pub const POOLED_BYTES: usize = crate::dump::BUFFER_BYTES + 64 * 1024;

/// Buffers kept at most (two lanes with a few segments in flight each cycle through fewer).
pub const MAX_POOLED: usize = 8;

static POOL: Mutex<Vec<BytesMut>> = Mutex::new(Vec::new());

/// An empty buffer with at least [`POOLED_BYTES`] of capacity: a recycled one when there is one.
pub fn take() -> BytesMut {
    let recycled = POOL.lock().unwrap_or_else(|e| e.into_inner()).pop();
    recycled.unwrap_or_else(|| BytesMut::with_capacity(POOLED_BYTES))
}

/// Offers a buffer back. Kept when this is its only reference, its capacity is what [`take`]
/// hands out (not a small tail or an oversized one) and the pool has room; dropped otherwise.
pub fn give(bytes: Bytes) {
    let Ok(mut buf) = bytes.try_into_mut() else {
        return;
    };
    if !(POOLED_BYTES..=2 * POOLED_BYTES).contains(&buf.capacity()) {
        return;
    }
    buf.clear();
    let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
    if pool.len() < MAX_POOLED {
        pool.push(buf);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One test touches the process-wide pool, so counts cannot race with another test.
    #[test]
    fn buffers_come_back_only_when_whole_unique_and_pool_sized() {
        POOL.lock().unwrap().clear();
        // A full-sized, unique buffer comes back, empty, and is handed out again.
        let mut b = take();
        assert!(b.capacity() >= POOLED_BYTES);
        b.extend_from_slice(&[7; 1000]);
        let ptr = b.as_ptr();
        give(b.freeze());
        assert_eq!(POOL.lock().unwrap().len(), 1);
        let again = take();
        assert!(again.is_empty());
        assert_eq!(again.as_ptr(), ptr, "the same memory is reused");
        assert!(POOL.lock().unwrap().is_empty());

        // Still referenced elsewhere: not taken (the other holder may still read it).
        let mut b = take();
        b.extend_from_slice(b"row\n");
        let shared = b.freeze();
        let other = shared.clone();
        give(shared);
        assert!(POOL.lock().unwrap().is_empty());
        assert_eq!(&other[..], b"row\n");

        // Small or oversized buffers are not pooled.
        give(Bytes::from(vec![1u8; 100]));
        give(BytesMut::with_capacity(3 * POOLED_BYTES).freeze());
        assert!(POOL.lock().unwrap().is_empty());

        // The pool holds at most MAX_POOLED buffers.
        for _ in 0..MAX_POOLED + 3 {
            give(BytesMut::with_capacity(POOLED_BYTES).freeze());
        }
        assert_eq!(POOL.lock().unwrap().len(), MAX_POOLED);
        POOL.lock().unwrap().clear();
    }
}
