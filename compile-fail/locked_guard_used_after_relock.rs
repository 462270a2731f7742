//! expect-error: E0502
//!
//! R6: when the locker locks again (a new pass, or a backoff inside it) every lock it held may
//! be dropped. The locks it hands out borrow it, so one of them cannot be used across the next
//! `lock_slice`.

use crate::dmabuf_lock::{
    context::MayBlock,
    locker::{LockerFlags, ResvLocker},
    resv::{FenceUsage, Resv},
};
use kernel::prelude::*;
use pin_init::stack_pin_init;

/// Exercises the case described at the top of this file.
pub fn snippet(task: &MayBlock, a: &Resv, b: &Resv) -> Result {
    stack_pin_init!(let locker = ResvLocker::new(LockerFlags::default()));
    locker.as_mut().lock_slice(task, &[a])?;
    let first = &locker.locked()[0];
    locker.as_mut().lock_slice(task, &[a, b])?;
    let _busy = first.fences(FenceUsage::Read).count();
    Ok(())
}
