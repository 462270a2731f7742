//! expect-error: E0502
//!
//! R4: a fence-signalling critical section must not take a reservation lock. The section
//! borrows the task's `TaskCtx` mutably, and locking needs it, so rustc rejects the lock:
//! "cannot borrow `*task` as immutable because it is also borrowed as mutable".

use crate::dmabuf_lock::{context::TaskCtx, resv::Resv};

/// Exercises the case described at the top of this file.
pub fn snippet(task: &mut TaskCtx, resv: &Resv) {
    let section = task.signalling_section();
    let guard = resv.lock(task);
    drop(guard);
    drop(section);
}
