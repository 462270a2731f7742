// SPDX-License-Identifier: GPL-2.0

//! expect-splat: possible circular locking dependency detected[\s\S]*fs_reclaim[\s\S]*dma_fence_map
//!
//! Deliberately wrong (R4): the old submission order. The job's fence is published (added to a
//! reservation) and only then is the work item that will signal it allocated, with `GFP_KERNEL`,
//! as `work::spawn` does (`KBox::pin_init` of the work item). Everything from publishing a fence
//! to signalling it is a signalling critical section; annotated as one, the tail makes lockdep
//! report the allocation (reclaim may wait for this very fence). The library's `SignallingQueue::prepare` allocates
//! the work item before the fence exists, which is the fix in the twin.
//!
//! Its correct twin is `r4_submission_tail_good.rs`.

pub mod common;
#[path = "../../rust/dmabuf_lock/mod.rs"]
pub mod dmabuf_lock;
#[path = "../support/work.rs"]
mod work;

use common::init_task;
use dmabuf_lock::{
    fence::FenceTimeline,
    resv::{FenceUsage, OwnedResv},
};
use kernel::prelude::*;

module! {
    type: R4SubmissionTailBad,
    name: "r4_submission_tail_bad",
    authors: ["dmabuf-lock developers"],
    description: "Lockdep negative test: signalling work allocated after publishing its fence (R4)",
    license: "GPL",
}

struct R4SubmissionTailBad;

impl kernel::Module for R4SubmissionTailBad {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let mut task = init_task()?;
        let resv = KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?;
        let timeline = FenceTimeline::new();
        let prepared = timeline.prepare(&task)?;
        let mut guard = resv.lock(&task);
        guard.reserve_fences(1)?;
        // The submission tail, annotated: from publishing the fence to queueing its signaller.
        let section = task.signalling_section();
        let fence = prepared.arm();
        guard.add_fence(fence.fence(), FenceUsage::Write)?;
        // The work item is allocated only now, inside the tail.
        let spawned = work::spawn(work::system_dfl(), move || fence.signal(Ok(())));
        drop(section);
        drop(guard);
        spawned?;
        resv.wait(&task, FenceUsage::Read, false, 5000)?;
        pr_info!("published a fence, then allocated its work item\n");
        Ok(Self)
    }
}
