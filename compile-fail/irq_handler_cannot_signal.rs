//! expect-error: E0599
//!
//! R4: a completion interrupt signals fences in atomic context, where no allocation may be
//! made. The interrupt's section (`IrqSection`) offers none, not even the `GFP_ATOMIC` one of a
//! task's section: "no method named `alloc` found for mutable reference `&mut IrqSection`".

use crate::dmabuf_lock::{
    context::MayBlock,
    fence::FenceTimeline,
    signalling::{PreparedIrqJob, SectionGfp},
};
use kernel::prelude::*;

/// Exercises the case described at the top of this file.
pub fn snippet(task: &MayBlock, timeline: &FenceTimeline) -> Result {
    let job = PreparedIrqJob::new(task, timeline, 1000, |fence, irq| {
        let _record = irq.alloc(fence.fence().seqno(), SectionGfp::Atomic);
        fence.signal(Ok(()));
    })?;
    drop(job);
    Ok(())
}
