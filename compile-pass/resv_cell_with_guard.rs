//! The pattern the `ResvCell` compile-fail snippets get wrong, done right (R10): the value is
//! used while the guard lives, read and written through the same proof in turn.

use crate::dmabuf_lock::{
    context::MayBlock,
    resv::{Resv, ResvCell},
};
use kernel::prelude::*;

/// Exercises the case described at the top of this file.
pub fn snippet(task: &MayBlock, resv: &Resv, cell: &ResvCell<u32>) -> Result<u32> {
    let mut guard = resv.lock(task);
    *cell.get_mut(&mut guard)? += 1;
    let value = *cell.get(&guard)?;
    drop(guard);
    Ok(value)
}
