//! expect-error: E0277
//!
//! R7: a reservation is unlocked by the task that locked it, so a guard is not `Send` and cannot
//! be handed to a work item or another thread.

use crate::dmabuf_lock::resv::Resv;

fn run_elsewhere<T: Send>(_value: T) {}

pub fn snippet(resv: &Resv) {
    run_elsewhere(resv.lock());
}
