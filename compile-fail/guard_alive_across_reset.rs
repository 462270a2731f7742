//! expect-error: E0502
//!
//! R6: `reset` unlocks everything and starts a new acquire context; no lock of the old context
//! may be alive then. Here one still is.

use crate::dmabuf_lock::{
    context::MayBlock,
    locker::{LockerFlags, ResvLocker},
    resv::Resv,
};
use kernel::prelude::*;
use pin_init::stack_pin_init;

/// Exercises the case described at the top of this file.
pub fn snippet(task: &MayBlock, a: &Resv) -> Result {
    stack_pin_init!(let locker = ResvLocker::new(LockerFlags::default()));
    locker.as_mut().lock_slice(task, &[a])?;
    let held = &locker.locked()[0];
    locker.as_mut().reset();
    let _still = held.resv().is_locked();
    Ok(())
}
