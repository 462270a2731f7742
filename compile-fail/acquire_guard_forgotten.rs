//! expect-error: E0603
//!
//! Soundness (R6): a lock held in an acquire context points back at the context, so a guard of
//! the context that is forgotten while the context is finalised leaves a dangling pointer that
//! the next contending task reads. The context and its guards are therefore private to the
//! locker, which owns both; this shape, which compiled before, cannot be written any more.

use crate::dmabuf_lock::{
    acquire::{AcquireCtx, Acquired},
    context::MayBlock,
    resv::Resv,
};
use pin_init::stack_pin_init;

/// Exercises the case described at the top of this file.
pub fn snippet(task: &MayBlock, resv: &Resv) {
    {
        stack_pin_init!(let ctx = AcquireCtx::new());
        let round = ctx.as_mut().begin(task, None);
        if let Ok(Acquired::Locked(guard)) = round.lock(task, resv) {
            core::mem::forget(guard);
        }
    }
}
