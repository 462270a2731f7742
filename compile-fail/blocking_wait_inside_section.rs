//! expect-error: E0502
//!
//! R4: a signalling section must not block waiting for a fence, which may itself wait on the
//! fence being signalled. Waiting needs the `MayBlock` that the section holds.

use crate::dmabuf_lock::{context::MayBlock, fence::Fence};
use kernel::prelude::*;

/// Exercises the case described at the top of this file.
pub fn snippet(task: &mut MayBlock, other: &Fence) -> Result {
    let section = task.signalling_section();
    let done = other.wait(task, false, 100)?;
    drop(section);
    if done {
        Ok(())
    } else {
        Err(ETIMEDOUT)
    }
}
