// SPDX-License-Identifier: GPL-2.0

//! The correct twin of `r4_submission_tail_bad.rs` (R4): the job's fence and the work item that
//! signals it are allocated together before any lock (`SignallingQueue::prepare`); the
//! submission tail, annotated as a signalling section, arms the job, publishes its fence and
//! queues the work item without allocating. The work item signals inside a section of its own.
//! Loading it must leave lockdep silent.

pub mod common;
#[path = "../../rust/dmabuf_lock/mod.rs"]
pub mod dmabuf_lock;

use common::init_task;
use dmabuf_lock::{
    fence::FenceTimeline,
    resv::{FenceUsage, OwnedResv},
    signalling::SignallingQueue,
};
use kernel::prelude::*;

module! {
    type: R4SubmissionTailGood,
    name: "r4_submission_tail_good",
    authors: ["dmabuf-lock developers"],
    description: "Lockdep positive test: signalling work prepared before publishing its fence (R4)",
    license: "GPL",
}

struct R4SubmissionTailGood;

impl kernel::Module for R4SubmissionTailGood {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        Ok(Self)
    }
}

/// The case runs as a KUnit case, once the module is live: the library refuses, during a
/// module's `init`, objects that point at the module's code (`EBUSY`).
#[kunit_tests(dmabuf_lock_r4_submission_tail_good)]
mod case {
    use super::*;

    #[test]
    fn run() -> Result {
        let mut task = init_task()?;
        let resv = KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?;
        let timeline = FenceTimeline::new();
        let queue = SignallingQueue::new(c"r4_submission_tail", &task)?;
        let job = queue.prepare(&task, &timeline, |fence, _section| fence.signal(Ok(())))?;
        let mut guard = resv.lock(&task);
        guard.reserve_fences(1)?;
        // The submission tail, annotated: from publishing the fence to queueing its signaller.
        let section = task.signalling_section();
        let job = job.arm(&section);
        guard.add_fence(job.fence(), FenceUsage::Write)?;
        job.queue();
        drop(section);
        drop(guard);
        resv.wait(&task, FenceUsage::Read, false, 5000)?;
        drop(queue);
        pr_info!("prepared a job, then published its fence and queued it\n");
        Ok(())
    }
}
