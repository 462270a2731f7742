//! expect-error: E0515
//!
//! R6: `ww_acquire_fini` runs when the locker goes out of scope, after its last lock is
//! released, so no lock taken in its context can be used after it.

use crate::dmabuf_lock::{
    context::MayBlock,
    locker::{LockerFlags, ResvLocker},
    resv::{Resv, ResvGuard},
};
use kernel::prelude::*;
use pin_init::stack_pin_init;

/// Exercises the case described at the top of this file.
pub fn snippet<'a>(task: &MayBlock, resv: &'a Resv) -> Result<&'a ResvGuard<'a>> {
    stack_pin_init!(let locker = ResvLocker::new(LockerFlags::default()));
    locker.as_mut().lock_slice(task, &[resv])?;
    Ok(&locker.into_ref().get_ref().locked()[0])
}
