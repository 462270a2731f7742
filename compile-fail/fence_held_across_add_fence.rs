//! expect-error: E0502
//!
//! Soundness: `dma_resv_add_fence()` puts the fence it replaces, so a fence borrowed from the
//! reservation's list cannot be used after adding another one (it could be freed).

use crate::dmabuf_lock::{
    context::MayBlock,
    fence::Fence,
    resv::{FenceUsage, Resv},
};
use kernel::prelude::*;

/// Exercises the case described at the top of this file.
pub fn snippet(task: &MayBlock, resv: &Resv, fence: &Fence) -> Result {
    let mut guard = resv.lock(task);
    guard.reserve_fences(1)?;
    let old = guard.fences(FenceUsage::Read).next();
    guard.add_fence(fence, FenceUsage::Write)?;
    if let Some(old) = old {
        let _ = old.is_signaled();
    }
    Ok(())
}
