//! expect-error: E0603
//!
//! Soundness (R6): `dma_resv_lock_slow()` discards the lock result. A round forgotten with its
//! locks still held would leave the context non-empty, the slow path could then fail to lock,
//! and a guard made anyway would later unlock another task's mutex. The slow path is private to
//! the locker (which empties its context first and checks the result); this shape, which
//! compiled before, cannot be written any more.

use crate::dmabuf_lock::{
    acquire::{AcquireCtx, LockError},
    context::MayBlock,
    resv::Resv,
};
use pin_init::stack_pin_init;

/// Exercises the case described at the top of this file.
pub fn snippet(task: &MayBlock, a: &Resv, b: &Resv) {
    stack_pin_init!(let ctx = AcquireCtx::new());
    let round = ctx.as_mut().begin(task, None);
    let _held = round.lock(task, a);
    if let Err(LockError::Deadlock(c)) = round.lock(task, b) {
        core::mem::forget(round);
        let _next = ctx.as_mut().begin(task, Some(c));
    }
}
