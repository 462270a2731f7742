//! expect-error: E0505
//!
//! R4, R5: the submission tail, from publishing a job's fence until its work item is queued, is
//! one annotated signalling section. An armed job borrows the section it was armed in, so ending
//! the section before the job is queued (or dropped, which cancels its fence) is refused:
//! "cannot move out of `section` because it is borrowed".

use crate::dmabuf_lock::{context::MayBlock, fence::FenceTimeline, signalling::SignallingQueue};
use kernel::prelude::*;

/// Exercises the case described at the top of this file.
pub fn snippet(task: &mut MayBlock, queue: &SignallingQueue, timeline: &FenceTimeline) -> Result {
    let job = queue.prepare(task, timeline, |fence, _section| fence.signal(Ok(())))?;
    let section = task.signalling_section();
    let job = job.arm(&section);
    drop(section);
    job.queue();
    Ok(())
}
