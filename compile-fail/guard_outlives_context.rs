//! expect-error: E0597 E0716
//!
//! R6: `ww_acquire_fini` runs when the context goes out of scope, after its last lock is
//! released. A guard taken through a context therefore cannot outlive it.

use crate::dmabuf_lock::{
    context::TaskCtx,
    acquire::{AcquireCtx, Acquired},
    resv::{Resv, ResvGuard},
};
use pin_init::stack_pin_init;

/// Exercises the case described at the top of this file.
pub fn snippet<'a>(task: &TaskCtx, resv: &'a Resv) -> Option<ResvGuard<'a>> {
    stack_pin_init!(let ctx = AcquireCtx::new());
    let round = ctx.as_mut().begin(task, None);
    match round.lock(task, resv) {
        Ok(Acquired::Locked(guard)) => Some(guard),
        _ => None,
    }
}
