//! expect-error: E0597
//!
//! R10: a value guarded by a reservation (`ResvCell`) is lent for as long as the proof that the
//! reservation is held: once the guard is dropped, the value cannot be reached any more.

use crate::dmabuf_lock::{
    context::MayBlock,
    resv::{Resv, ResvCell},
};
use kernel::prelude::*;

/// Exercises the case described at the top of this file.
pub fn snippet(task: &MayBlock, resv: &Resv, cell: &ResvCell<u32>) -> Result {
    let value = {
        let mut guard = resv.lock(task);
        cell.get_mut(&mut guard)?
    };
    *value += 1;
    Ok(())
}
