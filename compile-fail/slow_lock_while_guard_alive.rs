//! expect-error: E0499
//!
//! R6: the contended object may only be taken with `dma_resv_lock_slow` after every lock of the
//! context is dropped. Here the old round's guard is still alive (it is dropped only later), so
//! beginning the next round does not compile.

use crate::dmabuf_lock::{
    context::TaskCtx,
    acquire::{AcquireCtx, LockError},
    resv::Resv,
};
use kernel::prelude::*;
use pin_init::stack_pin_init;

/// Exercises the case described at the top of this file.
pub fn snippet(task: &TaskCtx, a: &Resv, b: &Resv) -> Result {
    stack_pin_init!(let ctx = AcquireCtx::new());
    let round = ctx.as_mut().begin(task, None);
    let held = round.lock(task, a).map_err(Error::from)?;
    if let Err(LockError::Deadlock(c)) = round.lock(task, b) {
        let _next = ctx.as_mut().begin(task, Some(c));
    }
    drop(held);
    Ok(())
}
