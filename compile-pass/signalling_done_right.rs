//! The pattern the signalling compile-fail snippets get wrong, done right (R4, R5, R8): lock
//! and allocate before the section, then arm, allocate atomically and signal inside it, nest a
//! section, and wait again once the section has ended.

use crate::dmabuf_lock::{
    context::MayBlock,
    fence::FenceTimeline,
    resv::{FenceUsage, Resv},
    signalling::SectionGfp,
};
use kernel::prelude::*;

/// Exercises the case described at the top of this file.
pub fn snippet(task: &mut MayBlock, resv: &Resv, timeline: &FenceTimeline) -> Result {
    let prepared = timeline.prepare(task)?;
    let mut guard = resv.lock(task);
    guard.reserve_fences(1)?;
    let mut section = task.signalling_section();
    let fence = prepared.arm();
    guard.add_fence(fence.fence(), FenceUsage::Write)?;
    drop(guard);
    let note = section.alloc(fence.fence().seqno(), SectionGfp::Atomic)?;
    {
        let inner = section.nested();
        let more = inner.alloc(*note, SectionGfp::NoWait)?;
        drop(more);
    }
    fence.signal(Ok(()));
    drop(section);
    resv.wait(task, FenceUsage::Write, false, 100)?;
    Ok(())
}
