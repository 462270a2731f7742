//! expect-error: E0499
//!
//! R6: once a lock returned `-EDEADLK`, the next round begins with the contended object on the
//! slow path. Beginning it takes the context mutably, so a guard of the old round cannot be
//! used afterwards.

use crate::dmabuf_lock::{
    acquire::{AcquireCtx, Acquired, LockError},
    resv::Resv,
};
use kernel::prelude::*;
use pin_init::stack_pin_init;

pub fn snippet(a: &Resv, b: &Resv) -> Result {
    stack_pin_init!(let ctx = AcquireCtx::new());
    let round = ctx.as_mut().begin(None);
    let guard = round.lock(a).map_err(Error::from)?;
    let contended = match round.lock(b) {
        Err(LockError::Deadlock(c)) => c,
        _ => return Ok(()),
    };
    let _next = ctx.as_mut().begin(Some(contended));
    if let Acquired::Locked(g) = guard {
        g.reserve_fences(1)?;
    }
    Ok(())
}
