//! expect-error: E0505
//!
//! R2: a reservation locked by `ReclaimScope::try_lock` is held in reclaim, and stays borrowed
//! from the scope: ending the scope (dropping it) while the guard is alive does not compile
//! ("cannot move out of `reclaim` because it is borrowed"), so the lock cannot be carried out of
//! reclaim into code that blocks. Dropping the guard first compiles.

use crate::dmabuf_lock::{context::MayBlock, resv::Resv};

/// Exercises the case described at the top of this file.
pub fn snippet(task: &mut MayBlock, resv: &Resv) {
    let reclaim = task.reclaim_scope();
    let guard = reclaim.try_lock(resv);
    drop(reclaim);
    drop(guard);
}
