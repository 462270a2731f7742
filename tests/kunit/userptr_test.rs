// SPDX-License-Identifier: GPL-2.0

//! KUnit suite `dmabuf_lock_userptr`: user ranges watched by an mmu interval notifier (R3). Each
//! case gives its kthread an address space (`kunit_attach_mm()`) and maps anonymous memory in
//! it, as a process has; `vm_munmap()` is the process unmapping its range.

use kernel::prelude::*;

#[kunit_tests(dmabuf_lock_userptr)]
mod tests {
    use crate::{
        common::task,
        dmabuf_lock::{
            context::MayBlock,
            fence::FenceTimeline,
            resv::{FenceUsage, OwnedResv},
            signalling::{HwCompletion, PreparedIrqJob},
            userptr::{Invalidate, InvalidateEvent, Invalidation, UserRange},
        },
        DmabufLockTest,
    };
    use kernel::{
        bindings,
        error::to_result,
        page::PAGE_SIZE,
        prelude::*,
        sync::atomic::{Atomic, Relaxed},
        time::{Instant, Monotonic},
        uaccess::{UserPtr, UserSlice},
    };

    /// This module's reference count.
    fn module_refs() -> i32 {
        let module = kernel::module::this_module::<DmabufLockTest>().as_ptr();
        // SAFETY: The module is live: its code is running.
        unsafe { bindings::module_refcount(module) }
    }

    /// Gives the case's kthread an address space and maps `pages` read-write anonymous pages.
    fn map(pages: usize) -> Result<usize> {
        // SAFETY: Attaches a new mm to the current kthread (or keeps the one it has).
        to_result(unsafe { bindings::kunit_attach_mm() })?;
        // PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS.
        let (len, prot, flags) = (pages * PAGE_SIZE, 3, 0x22);
        // SAFETY: A new mapping at an address of the kernel's choice, replacing nothing.
        let addr = unsafe { bindings::vm_mmap(core::ptr::null_mut(), 0, len, prot, flags, 0) };
        match i32::try_from(addr as isize) {
            Ok(errno @ -4095..=-1) => Err(Error::from_errno(errno)),
            _ => Ok(addr),
        }
    }

    /// Unmaps what `map` mapped, or part of it.
    fn unmap(addr: usize, len: usize) -> Result {
        // SAFETY: Unmaps memory of the case's own address space, which no Rust reference
        // points into.
        to_result(unsafe { bindings::vm_munmap(addr, len) })
    }

    /// What the callback saw: the jobs' reservation, and the invalidations.
    #[pin_data]
    struct Seen {
        #[pin]
        resv: OwnedResv,
        count: Atomic<u32>,
        unmaps: Atomic<u32>,
        start: Atomic<usize>,
        end: Atomic<usize>,
    }

    impl Invalidate for Seen {
        fn invalidate(&self, range: &Invalidation<'_>) {
            range.wait_resv(&self.resv, FenceUsage::Bookkeep, 5000);
            if range.event() == InvalidateEvent::Unmap {
                self.unmaps.add(1, Relaxed);
            }
            self.start.store(range.start(), Relaxed);
            self.end.store(range.end(), Relaxed);
            self.count.add(1, Relaxed);
        }
    }

    fn seen() -> impl PinInit<Seen> {
        pin_init!(Seen {
            resv <- OwnedResv::new(),
            count: Atomic::new(0),
            unmaps: Atomic::new(0),
            start: Atomic::new(0),
            end: Atomic::new(0),
        })
    }

    /// Submits a job of `delay_ms` on `range`, through the read / lock / commit protocol.
    fn submit(
        task: &mut MayBlock,
        range: &UserRange<Seen>,
        timeline: &FenceTimeline,
        delay_ms: u32,
    ) -> Result {
        let job = PreparedIrqJob::new(task, timeline, delay_ms + 1000, |_fence, _irq| Ok(()))?;
        let pages = range.read_pages(task, true)?;
        let mut guard = range.resv.lock(task);
        guard.reserve_fences(1)?;
        let committed = range.commit(task, &pages)?;
        let section = task.signalling_section();
        let job = job.arm(&section);
        guard.add_fence(job.fence(), FenceUsage::Write)?;
        job.submit(HwCompletion::After(delay_ms));
        drop(section);
        drop(committed);
        Ok(())
    }

    #[test]
    fn munmap_waits_for_the_job_fence() -> Result {
        let mut task = task()?;
        let addr = map(4)?;
        let range = UserRange::register(&task, addr, 4 * PAGE_SIZE, seen())?;
        let timeline = FenceTimeline::new();
        submit(&mut task, &range, &timeline, 200)?;
        let start = Instant::<Monotonic>::now();
        // One page in the middle: the callback sees that page only.
        unmap(addr + PAGE_SIZE, PAGE_SIZE)?;
        let waited = start.elapsed().as_millis();
        assert!(range.resv.test_signaled(FenceUsage::Bookkeep));
        assert!(waited >= 150);
        assert_eq!(range.unmaps.load(Relaxed), 1);
        assert_eq!(range.start.load(Relaxed), addr + PAGE_SIZE);
        assert_eq!(range.end.load(Relaxed), addr + 2 * PAGE_SIZE);
        // With the job done, the next change does not wait.
        let start = Instant::<Monotonic>::now();
        unmap(addr, 4 * PAGE_SIZE)?;
        assert!(start.elapsed().as_millis() < 100);
        assert!(range.count.load(Relaxed) >= 2);
        Ok(())
    }

    #[test]
    fn pins_keep_the_pages_after_munmap() -> Result {
        let task = task()?;
        let addr = map(1)?;
        UserSlice::new(UserPtr::from_addr(addr), 8)
            .writer()
            .write_slice(b"userptr!")?;
        let range = UserRange::register(&task, addr, PAGE_SIZE, seen())?;
        let pages = range.read_pages(&task, false)?;
        assert!(!pages.is_stale());
        unmap(addr, PAGE_SIZE)?;
        // The range changed: the read is stale and cannot be committed...
        assert!(pages.is_stale());
        assert_eq!(range.commit(&task, &pages).err(), Some(EAGAIN));
        // ... but its page is still pinned, and still holds what the process wrote.
        let page = pages.page(0).ok_or(EINVAL)?;
        let mut bytes = [0u8; 8];
        // SAFETY: The page is pinned and no longer mapped anywhere: nothing writes it.
        unsafe { page.read_raw(bytes.as_mut_ptr(), 0, bytes.len())? };
        assert_eq!(&bytes, b"userptr!");
        assert!(pages.page(1).is_none());
        drop(pages);
        // A new read fails now: nothing is mapped there.
        assert_eq!(range.read_pages(&task, false).err(), Some(EFAULT));
        Ok(())
    }

    #[test]
    fn owned_pins_outlive_the_range_and_the_mapping() -> Result {
        let task = task()?;
        let addr = map(1)?;
        UserSlice::new(UserPtr::from_addr(addr), 8)
            .writer()
            .write_slice(b"job pins")?;
        let range = UserRange::register(&task, addr, PAGE_SIZE, seen())?;
        let pages = range.read_pages(&task, true)?;
        let committed = range.commit(&task, &pages)?;
        drop(committed);
        // What a job keeps until its fence signals: owned, and free to go to another task.
        fn job_owned<P: Send + Sync + 'static>(pins: P) -> P {
            pins
        }
        let pins = job_owned(pages.into_pins());
        assert!(pins.is_write());
        unmap(addr, PAGE_SIZE)?;
        drop(range);
        let page = pins.page(0).ok_or(EINVAL)?;
        let mut bytes = [0u8; 8];
        // SAFETY: The page is pinned and no longer mapped anywhere: nothing writes it.
        unsafe { page.read_raw(bytes.as_mut_ptr(), 0, bytes.len())? };
        assert_eq!(&bytes, b"job pins");
        assert!(pins.page(1).is_none());
        Ok(())
    }

    #[test]
    fn commit_refuses_another_ranges_pages() -> Result {
        let task = task()?;
        let addr = map(2)?;
        let first = UserRange::register(&task, addr, PAGE_SIZE, seen())?;
        let second = UserRange::register(&task, addr + PAGE_SIZE, PAGE_SIZE, seen())?;
        let pages = second.read_pages(&task, true)?;
        assert_eq!(first.commit(&task, &pages).err(), Some(EINVAL));
        assert!(second.commit(&task, &pages).is_ok());
        Ok(())
    }

    #[test]
    fn registration_holds_its_module() -> Result {
        let task = task()?;
        let addr = map(1)?;
        let refs = module_refs();
        let range = UserRange::register(&task, addr, PAGE_SIZE, seen())?;
        assert_eq!(module_refs(), refs + 1);
        drop(range);
        assert_eq!(module_refs(), refs);
        // Refused registrations hold nothing.
        assert_eq!(
            UserRange::register(&task, addr + 1, PAGE_SIZE, seen()).err(),
            Some(EINVAL)
        );
        assert_eq!(module_refs(), refs);
        Ok(())
    }

    #[test]
    fn dropped_range_sees_no_more_invalidations() -> Result {
        let mut task = task()?;
        let addr = map(2)?;
        let range = UserRange::register(&task, addr, 2 * PAGE_SIZE, seen())?;
        let timeline = FenceTimeline::new();
        submit(&mut task, &range, &timeline, 0)?;
        drop(range);
        // The notifier is gone with the range: unmapping calls nothing of it.
        unmap(addr, 2 * PAGE_SIZE)?;
        Ok(())
    }
}
