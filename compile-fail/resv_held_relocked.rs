//! expect-error: E0599
//!
//! R10: a callback that the dma-buf core calls with the reservation held gets a `ResvHeld`
//! proof, which reaches the guarded data but offers no way to lock the reservation again.

use crate::dmabuf_lock::{
    context::MayBlock,
    resv::{ResvCell, ResvHeld},
};
use kernel::prelude::*;

/// Exercises the case described at the top of this file.
pub fn snippet(task: &MayBlock, held: &mut ResvHeld<'_>, cell: &ResvCell<u32>) -> Result {
    let _again = held.lock(task);
    *cell.get_mut(held)? += 1;
    Ok(())
}
