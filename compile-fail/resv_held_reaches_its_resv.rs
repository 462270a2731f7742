//! expect-error: E0599
//!
//! R10: which reservation a proof stands for is private to the library, so a callback cannot
//! get the `&Resv` of the reservation the core holds for it, to lock it again.

use crate::dmabuf_lock::{context::MayBlock, resv::ResvHeld};
use kernel::prelude::*;

/// Exercises the case described at the top of this file.
pub fn snippet(task: &MayBlock, held: &ResvHeld<'_>) -> Result {
    let _again = held.held_resv().lock(task);
    Ok(())
}
