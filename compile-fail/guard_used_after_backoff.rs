//! expect-error: E0499
//!
//! R6: once a lock returned `-EDEADLK`, the next round begins with the contended object on the
//! slow path. Beginning it takes the context mutably, so a guard of the old round cannot be
//! used afterwards.

use crate::dmabuf_lock::{
    context::TaskCtx,
    acquire::{AcquireCtx, Acquired, LockError},
    resv::Resv,
};
use kernel::prelude::*;
use pin_init::stack_pin_init;

/// Exercises the case described at the top of this file.
pub fn snippet(task: &TaskCtx, a: &Resv, b: &Resv) -> Result {
    stack_pin_init!(let ctx = AcquireCtx::new());
    let round = ctx.as_mut().begin(task, None);
    let guard = round.lock(task, a).map_err(Error::from)?;
    let contended = match round.lock(task, b) {
        Err(LockError::Deadlock(c)) => c,
        _ => return Ok(()),
    };
    let _next = ctx.as_mut().begin(task, Some(contended));
    if let Acquired::Locked(g) = guard {
        g.reserve_fences(1)?;
    }
    Ok(())
}
