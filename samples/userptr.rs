// SPDX-License-Identifier: GPL-2.0

//! The importer's userptr objects: a range of the caller's memory that jobs use, watched by an
//! mmu interval notifier (the library's `UserRange`), as a GPU driver's userptr buffers are.
//!
//! A job publishes its fence on the userptr's reservation. When the process unmaps the range,
//! changes its protection, forks, or the kernel reclaims or migrates its pages, the notifier's
//! callback waits for those fences before the change goes on (up to a time-out longer than any
//! job runs), so a running job does not see its pages change under it (R3). Submitting follows the protocol the library gives: look the pages
//! up with no lock held (this takes `mmap_lock`, R1), lock the reservation, commit (the notifier
//! lock: no invalidation ran since the lookup, or `EAGAIN` and look again), then publish the fence
//! in the signalling section (R4) before the commit ends.

use super::dmabuf_lock::{
    context::MayBlock,
    fence::{Fence, FenceTimeline},
    resv::{FenceUsage, OwnedResv},
    signalling::{HwCompletion, PreparedIrqJob},
    userptr::{Invalidate, Invalidation, PinnedPages, UserRange},
};
use super::uapi::{DLS_JOB_GRACE_MS, DLS_JOB_HANG, DLS_MAX_PAGES};
use kernel::{
    alloc::kvec::PushError,
    new_mutex,
    page::PAGE_SIZE,
    prelude::*,
    sync::{
        aref::ARef,
        atomic::{Atomic, Relaxed},
        Mutex,
    },
};

/// How long an invalidation waits for a job: longer than any job may run (its delay, at most
/// 10 s, and its watchdog's grace), so the wait ends when the job does (R3, R8).
const INVALIDATE_WAIT_MS: u32 = 15_000;

/// How many times a submission looks the pages up again when the range changed meanwhile.
const COMMIT_TRIES: u32 = 4;

/// A userptr: the range and its notifier.
pub struct Userptr {
    range: UserRange<Jobs>,
}

/// What the notifier's callback needs: where the jobs publish their fences.
#[pin_data]
pub struct Jobs {
    #[pin]
    resv: OwnedResv,
    /// Invalidations that found a job running and waited for it.
    waited: Atomic<u64>,
    /// The pins of the jobs that may still run, each kept until its job's fence signals (the
    /// callback never takes this lock).
    #[pin]
    pins: Mutex<KVec<(ARef<Fence>, PinnedPages)>>,
}

impl Invalidate for Jobs {
    /// Runs inside the mmu-notifier scope: only waiting, no allocation, no reservation lock (R2).
    fn invalidate(&self, range: &Invalidation<'_>) {
        if self.resv.test_signaled(FenceUsage::Bookkeep) {
            return;
        }
        self.waited.add(1, Relaxed);
        range.wait_resv(&self.resv, FenceUsage::Bookkeep, INVALIDATE_WAIT_MS);
    }
}

impl Userptr {
    /// Wraps `len` bytes at `addr` of the caller's memory: whole pages, at most
    /// [`DLS_MAX_PAGES`], mapped writable now (`EFAULT` otherwise).
    pub fn new(task: &MayBlock, addr: u64, len: u64) -> Result<Self> {
        if len == 0 || len > DLS_MAX_PAGES * PAGE_SIZE as u64 {
            return Err(EINVAL);
        }
        let addr = usize::try_from(addr).map_err(|_| EINVAL)?;
        let range = UserRange::register(
            task,
            addr,
            len as usize,
            pin_init!(Jobs {
                resv <- OwnedResv::new(),
                waited: Atomic::new(0),
                pins <- new_mutex!(KVec::new()),
            }),
        )?;
        // Unmapped or read-only memory is refused now rather than at the first job.
        drop(range.read_pages(task, true)?);
        Ok(Self { range })
    }

    /// Submits a job that uses the pages; returns its fence's sequence number. Only the process
    /// that wrapped the memory may (`EPERM` for one the importer's file was passed to).
    pub fn job(&self, task: &mut MayBlock, timeline: &FenceTimeline, delay_ms: u32) -> Result<u64> {
        if !self.range.is_in_current_mm() {
            return Err(EPERM);
        }
        let hang = delay_ms & DLS_JOB_HANG != 0;
        let delay_ms = delay_ms & !DLS_JOB_HANG;
        if delay_ms > 10_000 {
            return Err(EINVAL);
        }
        let completion = if hang {
            HwCompletion::Never
        } else {
            HwCompletion::After(delay_ms)
        };
        // Allocated before any lock and before the fence exists (R4).
        let timeout_ms = delay_ms + DLS_JOB_GRACE_MS;
        let job = PreparedIrqJob::new(task, timeline, timeout_ms, |_fence, _irq| Ok(()))?;
        let mut tries = 0;
        let (pages, mut guard, committed) = loop {
            tries += 1;
            // No lock held: looking pages up takes `mmap_lock` (R1) and waits for an invalidation
            // under way.
            let pages = self.range.read_pages(task, true)?;
            let mut guard = self.range.resv.lock_interruptible(task)?;
            guard.reserve_fences(1)?;
            match self.range.commit(task, &pages) {
                Ok(committed) => break (pages, guard, committed),
                Err(e) if e == EAGAIN && tries < COMMIT_TRIES => continue,
                Err(e) => return Err(e),
            }
        };
        // The submission tail: a signalling section inside the commit, so an invalidation either
        // ran before (and the commit failed) or waits for this job's fence (R3, R4).
        let section = task.signalling_section();
        let job = job.arm(&section);
        guard.add_fence(job.fence(), FenceUsage::Write)?;
        let seqno = job.fence().seqno();
        let fence: ARef<Fence> = job.fence().into();
        job.submit(completion);
        drop(section);
        drop(committed);
        drop(guard);
        // The job owns its pins until its fence signals, whatever the process does with the
        // range meanwhile: a device using the pages needs them.
        self.keep(task, fence, pages.into_pins());
        Ok(seqno)
    }

    /// Keeps a job's pins until its fence signals. Pins of jobs that are done are released here,
    /// in process context (unpinning may sleep: never in the job's hrtimer).
    fn keep(&self, task: &MayBlock, fence: ARef<Fence>, pins: PinnedPages) {
        let mut kept = self.range.pins.lock();
        kept.retain(|(fence, _)| !fence.is_signaled());
        // If there is no room, the push below fails and gives the pins back.
        let _ = kept.reserve(1, GFP_KERNEL);
        let Err(PushError((fence, pins))) = kept.push_within_capacity((fence, pins)) else {
            return;
        };
        drop(kept);
        // No memory to keep them: the job is waited for (its watchdog bounds it), then unpinned.
        let _ = fence.wait(task, false, INVALIDATE_WAIT_MS);
        drop(pins);
    }

    /// Waits up to `timeout_ms` for the jobs that use the userptr.
    pub fn wait(&self, task: &MayBlock, timeout_ms: u32) -> Result<u64> {
        if self
            .range
            .resv
            .wait(task, FenceUsage::Bookkeep, true, timeout_ms)?
        {
            Ok(1)
        } else {
            Err(ETIMEDOUT)
        }
    }

    /// How many invalidations waited for a job.
    pub fn waited(&self) -> u64 {
        self.range.waited.load(Relaxed)
    }
}

impl Drop for Userptr {
    /// The jobs' pins go with the userptr (in process context: the last reference goes in an
    /// ioctl or the file's release), after its jobs, which their watchdogs bound.
    fn drop(&mut self) {
        if let Ok(task) = MayBlock::new() {
            let _ = self
                .range
                .resv
                .wait(&task, FenceUsage::Bookkeep, false, INVALIDATE_WAIT_MS);
        }
    }
}
