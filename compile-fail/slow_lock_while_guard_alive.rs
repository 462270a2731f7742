//! expect-error: E0499
//!
//! R6: the contended object may only be taken with `dma_resv_lock_slow` after every lock of the
//! context is dropped. Here the old round's guard is still alive (it is dropped only later), so
//! beginning the next round does not compile.

use crate::dmabuf_lock::{
    acquire::{AcquireCtx, LockError},
    resv::Resv,
};
use kernel::prelude::*;
use pin_init::stack_pin_init;

pub fn snippet(a: &Resv, b: &Resv) -> Result {
    stack_pin_init!(let ctx = AcquireCtx::new());
    let round = ctx.as_mut().begin(None);
    let held = round.lock(a).map_err(Error::from)?;
    if let Err(LockError::Deadlock(c)) = round.lock(b) {
        let _next = ctx.as_mut().begin(Some(c));
    }
    drop(held);
    Ok(())
}
