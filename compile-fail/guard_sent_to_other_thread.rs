//! expect-error: E0277
//!
//! R7: a reservation is unlocked by the task that locked it, so a guard is not `Send` and cannot
//! be handed to a work item or another thread.

use crate::dmabuf_lock::{context::MayBlock, resv::Resv};

fn run_elsewhere<T: Send>(_value: T) {}

/// Exercises the case described at the top of this file.
pub fn snippet(task: &MayBlock, resv: &Resv) {
    run_elsewhere(resv.lock(task));
}
