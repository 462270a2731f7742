// SPDX-License-Identifier: GPL-2.0

//! What the userptr lockdep cases share: a page of the KUnit case's own address space wrapped as
//! a userptr, and a job on it that a real `munmap` waits for.

use crate::dmabuf_lock::{
    context::MayBlock,
    fence::FenceTimeline,
    resv::{FenceUsage, OwnedResv},
    signalling::{HwCompletion, PreparedIrqJob},
    userptr::{Invalidate, Invalidation, UserRange},
};
use kernel::{
    prelude::*,
    sync::atomic::{Atomic, Relaxed},
};

/// A userptr whose invalidation waits for its job's fence, then runs `after_wait`.
#[pin_data]
pub struct UserJobs {
    #[pin]
    resv: OwnedResv,
    after_wait: fn(),
    invalidations: Atomic<u32>,
}

impl Invalidate for UserJobs {
    fn invalidate(&self, range: &Invalidation<'_>) {
        range.wait_resv(&self.resv, FenceUsage::Bookkeep, 5000);
        (self.after_wait)();
        self.invalidations.add(1, Relaxed);
    }
}

/// Maps a page in the (KUnit case's) task and wraps it as a userptr whose callback runs
/// `after_wait`; returns it with its address.
pub fn map_userptr(task: &MayBlock, after_wait: fn()) -> Result<(UserRange<UserJobs>, usize)> {
    const PAGE: usize = kernel::page::PAGE_SIZE;
    // A KUnit case runs in a kthread without an address space: give it one.
    // SAFETY: Attaches a new mm to the current kthread; no preconditions.
    kernel::error::to_result(unsafe { kernel::bindings::kunit_attach_mm() })?;
    // PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS.
    // SAFETY: A new anonymous mapping in the task's own address space, replacing nothing.
    let addr = unsafe { kernel::bindings::vm_mmap(core::ptr::null_mut(), 0, PAGE, 3, 0x22, 0) };
    if let Ok(errno @ -4095..=-1) = i32::try_from(addr as isize) {
        return Err(Error::from_errno(errno));
    }
    let range = UserRange::register(
        task,
        addr,
        PAGE,
        pin_init!(UserJobs {
            resv <- OwnedResv::new(),
            after_wait,
            invalidations: Atomic::new(0),
        }),
    )?;
    Ok((range, addr))
}

/// Maps a page in the (KUnit case's) task, wraps it as a userptr whose callback runs
/// `after_wait`, submits a job of 50 ms on it and unmaps the page while the job runs: the real
/// invalidation waits for the job's fence. Returns how many invalidations ran.
pub fn unmap_under_job(task: &mut MayBlock, after_wait: fn()) -> Result<u32> {
    const PAGE: usize = kernel::page::PAGE_SIZE;
    let (range, addr) = map_userptr(task, after_wait)?;
    let timeline = FenceTimeline::new();
    let job = PreparedIrqJob::new(task, &timeline, 5000, |_fence, _irq| Ok(()))?;
    let pages = range.read_pages(task, true)?;
    let mut guard = range.resv.lock(task);
    guard.reserve_fences(1)?;
    let committed = range.commit(task, &pages)?;
    let section = task.signalling_section();
    let job = job.arm(&section);
    guard.add_fence(job.fence(), FenceUsage::Write)?;
    job.submit(HwCompletion::After(50));
    drop(section);
    drop(committed);
    drop(guard);
    drop(pages);
    // SAFETY: Unmaps the page mapped above, in the task's own address space.
    kernel::error::to_result(unsafe { kernel::bindings::vm_munmap(addr, PAGE) })?;
    if !range.resv.test_signaled(FenceUsage::Bookkeep) {
        pr_err!("munmap returned before the job's fence signalled\n");
        return Err(EINVAL);
    }
    Ok(range.invalidations.load(Relaxed))
}
