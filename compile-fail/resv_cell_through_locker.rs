//! expect-error: E0277
//!
//! R10: a locker's lock is not a proof for a `ResvCell`. Several of them are alive at once and
//! C code may lock with the locker's acquire context too, so a callback run inside one call
//! could reach a value another lends; lock the one reservation instead.

use crate::dmabuf_lock::{
    context::MayBlock,
    locker::{LockerFlags, ResvLocker},
    resv::{Resv, ResvCell},
};
use kernel::prelude::*;
use pin_init::stack_pin_init;

/// Exercises the case described at the top of this file.
pub fn snippet(task: &MayBlock, resv: &Resv, cell: &ResvCell<u32>) -> Result {
    stack_pin_init!(let locker = ResvLocker::new(LockerFlags::default()));
    locker.as_mut().lock_slice(task, &[resv])?;
    for mut held in locker.as_mut().locked_mut() {
        *cell.get_mut(&mut held)? += 1;
    }
    Ok(())
}
