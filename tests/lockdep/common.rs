// SPDX-License-Identifier: GPL-2.0

//! What the lockdep case modules share, so that each twin shows only where it differs.

use crate::dmabuf_lock::{
    context::MayBlock,
    fence::FenceTimeline,
    lockdep::{Level, LockOrder},
    resv::{FenceUsage, OwnedResv},
    signalling::{HwCompletion, IrqHandler, PreparedIrqJob},
};
use kernel::{
    prelude::*,
    sync::{Arc, Completion, Mutex},
};

/// The proof that module init may block.
pub fn init_task() -> Result<MayBlock> {
    MayBlock::new()
}

/// A reservation shared with a work item, and the completion the work item signals.
#[pin_data]
pub struct SharedResv {
    /// The reservation.
    #[pin]
    pub resv: OwnedResv,
    /// Completed by the work item when it is finished with `resv`.
    #[pin]
    pub done: Completion,
}

impl SharedResv {
    /// Allocates an unlocked reservation and an uncompleted completion.
    pub fn new() -> Result<Arc<Self>> {
        Arc::pin_init(
            pin_init!(Self {
                resv <- OwnedResv::new(),
                done <- Completion::new(),
            }),
            GFP_KERNEL,
        )
    }
}

/// Declares `job_queue` as taken inside fence-signalling sections, and primes that order (R9).
pub fn prime_job_queue<T: Send>(task: &MayBlock, job_queue: &Mutex<T>) -> Result {
    LockOrder::new(c"jobs")
        .then(Level::Signalling)
        .then(Level::Driver(job_queue, c"job_queue"))
        .prime(task)
}

/// Submits a job on a reservation whose fence the completion interrupt signals through
/// `on_irq` after a millisecond, and waits for it.
pub fn run_irq_job<F: IrqHandler>(task: &mut MayBlock, on_irq: F) -> Result {
    let resv = KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?;
    let timeline = FenceTimeline::new();
    let job = PreparedIrqJob::new(task, &timeline, 5000, on_irq)?;
    let mut guard = resv.lock(task);
    guard.reserve_fences(1)?;
    let section = task.signalling_section();
    let job = job.arm(&section);
    guard.add_fence(job.fence(), FenceUsage::Write)?;
    job.submit(HwCompletion::After(1));
    drop(section);
    drop(guard);
    resv.wait(task, FenceUsage::Write, false, 5000)?;
    Ok(())
}
