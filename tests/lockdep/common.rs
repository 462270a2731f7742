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

/// Declares `notifier_lock` as taken inside mmu-notifier invalidations, where the invalidation
/// then waits for the range's fences, and primes that order (R3, R9).
pub fn prime_notifier_lock<T: Send>(task: &MayBlock, notifier_lock: &Mutex<T>) -> Result {
    LockOrder::new(c"userptr")
        .then(Level::MmuNotifier)
        .then(Level::Driver(notifier_lock, c"notifier_lock"))
        .then(Level::FenceWait)
        .prime(task)
}

/// `echo 2 > /proc/sys/vm/drop_caches`, from module init (the path resolves in `insmod`'s
/// root): the kernel runs every shrinker (`drop_slab()`), outside reclaim proper.
pub fn drop_caches() -> Result {
    // SAFETY: The path is a C string; the file is closed below.
    let file = kernel::error::from_err_ptr(unsafe {
        kernel::bindings::filp_open(
            c"/proc/sys/vm/drop_caches".as_char_ptr(),
            kernel::bindings::O_WRONLY as i32,
            0,
        )
    })?;
    let mut pos: kernel::bindings::loff_t = 0;
    let data = b"2\n".as_ptr().cast();
    // SAFETY: `file` is open for writing; `data` is two valid bytes.
    let written = unsafe { kernel::bindings::kernel_write(file, data, 2, &mut pos) };
    // SAFETY: Opened above, closed once.
    unsafe { kernel::bindings::filp_close(file, core::ptr::null_mut()) };
    if written == 2 {
        Ok(())
    } else {
        Err(EIO)
    }
}
