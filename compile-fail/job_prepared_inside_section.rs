//! expect-error: E0502
//!
//! R4: a job's work item is allocated with `GFP_KERNEL` when it is prepared, so preparing it
//! needs the task's `MayBlock`, which a signalling section borrows: a job cannot be prepared
//! after its fence could have been published. "cannot borrow `*task` as immutable because it is
//! also borrowed as mutable".

use crate::dmabuf_lock::{context::MayBlock, fence::FenceTimeline, signalling::SignallingQueue};
use kernel::prelude::*;

/// Exercises the case described at the top of this file.
pub fn snippet(task: &mut MayBlock, queue: &SignallingQueue, timeline: &FenceTimeline) -> Result {
    let section = task.signalling_section();
    let job = queue.prepare(task, timeline, |fence, _section| fence.signal(Ok(())))?;
    job.arm(&section).queue();
    drop(section);
    Ok(())
}
