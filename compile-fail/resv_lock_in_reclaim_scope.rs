//! expect-error: E0502
//!
//! R2: reclaim (a shrinker, an eviction path) may only trylock a reservation; blocking on one
//! can deadlock against a task that allocates while holding it. A `ReclaimScope` borrows the
//! `MayBlock`, so the blocking lock does not compile inside it; `reclaim.try_lock()` does.

use crate::dmabuf_lock::{context::MayBlock, resv::Resv};

/// Exercises the case described at the top of this file.
pub fn snippet(task: &mut MayBlock, resv: &Resv) {
    let reclaim = task.reclaim_scope();
    let guard = resv.lock(task);
    drop(guard);
    drop(reclaim);
}
