//! expect-error: E0277
//!
//! R7: a signalling section's cookie is ended by the task that began it, so the section guard is
//! not `Send` and cannot be handed to a work item or another thread.

use crate::dmabuf_lock::context::MayBlock;

fn run_elsewhere<T: Send>(_value: T) {}

/// Exercises the case described at the top of this file.
pub fn snippet(task: &mut MayBlock) {
    run_elsewhere(task.signalling_section());
}
