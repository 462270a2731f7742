//! expect-error: E0596
//!
//! Soundness (R6): the locks a locker lends for adding fences cannot be swapped with another
//! guard, or one of its context's locks could leave it and outlive the context.

use crate::dmabuf_lock::{
    context::MayBlock,
    locker::{LockerFlags, ResvLocker},
    resv::Resv,
};
use kernel::prelude::*;
use pin_init::stack_pin_init;

/// Exercises the case described at the top of this file.
pub fn snippet(task: &MayBlock, a: &Resv, b: &Resv) -> Result {
    stack_pin_init!(let locker = ResvLocker::new(LockerFlags::default()));
    locker.as_mut().lock_slice(task, &[a])?;
    let mut plain = b.lock(task);
    if let Some(held) = locker.as_mut().locked_mut().next() {
        core::mem::swap(&mut *held, &mut plain);
    }
    Ok(())
}
