//! The pattern the `ResvCell` compile-fail snippets get wrong, done right (R10): the value is
//! used while the guard lives, through a single lock and through a locker's locks.

use crate::dmabuf_lock::{
    context::MayBlock,
    locker::{LockerFlags, ResvLocker},
    resv::{Resv, ResvCell},
};
use kernel::prelude::*;
use pin_init::stack_pin_init;

/// Exercises the case described at the top of this file.
pub fn snippet(task: &MayBlock, resv: &Resv, cell: &ResvCell<u32>) -> Result {
    {
        let mut guard = resv.lock(task);
        *cell.get_mut(&mut guard)? += 1;
    }
    stack_pin_init!(let locker = ResvLocker::new(LockerFlags::default()));
    locker.as_mut().lock_slice(task, &[resv])?;
    for mut held in locker.as_mut().locked_mut() {
        *cell.get_mut(&mut held)? += 1;
    }
    Ok(())
}
