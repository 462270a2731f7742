//! expect-error: E0277
//!
//! R4: the completion interrupt's handler must not block, so it cannot own a `MayBlock`, the
//! proof every blocking call of the library takes (a reservation lock here). The proof is
//! `!Send` and neither `Copy`, and the handler must be both: "`*mut ()` cannot be sent between
//! threads safely", "the trait bound `MayBlock: Copy` is not satisfied".

use crate::dmabuf_lock::{
    context::MayBlock, fence::FenceTimeline, resv::OwnedResv, signalling::PreparedIrqJob,
};
use kernel::prelude::*;

/// Exercises the case described at the top of this file.
pub fn snippet(task: &MayBlock, resv: &'static OwnedResv, timeline: &FenceTimeline) -> Result {
    let handler_task = MayBlock::new()?;
    let job = PreparedIrqJob::new(task, timeline, 1000, move |fence, _irq| {
        let _guard = resv.lock(&handler_task);
        fence.status().map(drop)
    })?;
    drop(job);
    Ok(())
}
