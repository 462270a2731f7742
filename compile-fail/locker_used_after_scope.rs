//! expect-error: E0716
//!
//! R6: a context is finalised when its locker goes out of scope and is never used again; the
//! pinned handle cannot escape that scope.

use crate::dmabuf_lock::{
    context::MayBlock,
    locker::{LockerFlags, ResvLocker},
    resv::Resv,
};
use kernel::prelude::*;
use pin_init::stack_pin_init;

/// Exercises the case described at the top of this file.
pub fn snippet(task: &MayBlock, resv: &Resv) -> Result {
    let escaped;
    {
        stack_pin_init!(let locker = ResvLocker::new(LockerFlags::default()));
        escaped = locker;
    }
    escaped.lock_slice(task, &[resv])
}
