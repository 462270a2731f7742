//! expect-error: E0502
//!
//! Soundness: `dma_resv_reserve_fences()` may replace the fence list (the old one is freed
//! after an RCU grace period, and signalled fences are put), so an iterator over the list cannot
//! be kept across it.

use crate::dmabuf_lock::{
    context::MayBlock,
    resv::{FenceUsage, Resv},
};
use kernel::prelude::*;

/// Exercises the case described at the top of this file.
pub fn snippet(task: &MayBlock, resv: &Resv) -> Result {
    let mut guard = resv.lock(task);
    let mut fences = guard.fences(FenceUsage::Bookkeep);
    let _first = fences.next();
    guard.reserve_fences(8)?;
    let _second = fences.next();
    Ok(())
}
