//! expect-error: E0502
//!
//! R4: a fence-signalling critical section must not take a reservation lock. The section
//! borrows the task's `MayBlock` mutably, and locking needs it, so rustc rejects the lock:
//! "cannot borrow `*task` as immutable because it is also borrowed as mutable".

use crate::dmabuf_lock::{context::MayBlock, resv::Resv};

/// Exercises the case described at the top of this file.
pub fn snippet(task: &mut MayBlock, resv: &Resv) {
    let section = task.signalling_section();
    let guard = resv.lock(task);
    drop(guard);
    drop(section);
}
