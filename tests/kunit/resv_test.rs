// SPDX-License-Identifier: GPL-2.0

//! KUnit suite `dmabuf_lock_resv`: single-object locking of reservations (R2, R7, R10).

use kernel::prelude::*;

#[kunit_tests(dmabuf_lock_resv)]
mod tests {
    use crate::{
        common::task,
        dmabuf_lock::{
            fence::FenceTimeline,
            resv::{FenceUsage, OwnedResv, Resv},
        },
    };
    use kernel::prelude::*;

    fn new_resv() -> Result<Pin<KBox<OwnedResv>>> {
        KBox::pin_init(OwnedResv::new(), GFP_KERNEL)
    }

    #[test]
    fn owned_resv_lifecycle() -> Result {
        let task = task()?;
        let resv = new_resv()?;
        assert!(!resv.is_locked());
        let guard = resv.lock(&task);
        assert!(resv.is_locked());
        assert!(core::ptr::eq(guard.resv(), &**resv));
        drop(guard);
        assert!(!resv.is_locked());
        Ok(())
    }

    #[test]
    fn try_lock_against_held() -> Result {
        let task = task()?;
        let resv = new_resv()?;
        let held = resv.lock(&task);
        assert!(resv.try_lock(&task).is_none());
        drop(held);
        let guard = resv.try_lock(&task);
        assert!(guard.is_some());
        assert!(resv.is_locked());
        Ok(())
    }

    #[test]
    fn lock_interruptible_without_signal() -> Result {
        let task = task()?;
        let resv = new_resv()?;
        let guard = resv.lock_interruptible(&task)?;
        assert!(guard.resv().is_locked());
        Ok(())
    }

    #[test]
    fn guard_reserves_fences() -> Result {
        let task = task()?;
        let resv = new_resv()?;
        let mut guard = resv.lock(&task);
        guard.reserve_fences(2)?;
        // Allocation under a reservation is allowed (R2): lockdep must stay quiet here.
        let v: KVec<u64> = KVec::with_capacity(512, GFP_KERNEL)?;
        assert!(v.capacity() >= 512);
        Ok(())
    }

    #[test]
    fn resv_from_raw() -> Result {
        let task = task()?;
        let owned = new_resv()?;
        // SAFETY: `owned` is initialised and outlives `view`.
        let view = unsafe { Resv::from_raw(owned.as_raw()) };
        let guard = view.lock(&task);
        assert!(owned.is_locked());
        drop(guard);
        assert!(!owned.is_locked());
        Ok(())
    }

    #[test]
    fn add_fence_needs_a_reserved_slot() -> Result {
        let task = task()?;
        let resv = new_resv()?;
        let timeline = FenceTimeline::new();
        let fence = timeline.prepare(&task)?.arm();
        let mut guard = resv.lock(&task);
        assert_eq!(
            guard.add_fence(fence.fence(), FenceUsage::Write),
            Err(ENOSPC)
        );
        guard.reserve_fences(1)?;
        guard.add_fence(fence.fence(), FenceUsage::Write)?;
        assert_eq!(
            guard.add_fence(fence.fence(), FenceUsage::Read),
            Err(ENOSPC)
        );
        fence.signal(Ok(()));
        Ok(())
    }

    #[test]
    fn fences_by_usage() -> Result {
        let task = task()?;
        let resv = new_resv()?;
        let usages = [FenceUsage::Write, FenceUsage::Read, FenceUsage::Bookkeep];
        let mut fences = KVec::with_capacity(usages.len(), GFP_KERNEL)?;
        for _ in usages {
            fences.push(FenceTimeline::new().prepare(&task)?.arm(), GFP_KERNEL)?;
        }
        let mut guard = resv.lock(&task);
        guard.reserve_fences(3)?;
        for (fence, usage) in fences.iter().zip(usages) {
            guard.add_fence(fence.fence(), usage)?;
        }
        assert_eq!(guard.fences(FenceUsage::Kernel).count(), 0);
        assert_eq!(guard.fences(FenceUsage::Write).count(), 1);
        assert_eq!(guard.fences(FenceUsage::Read).count(), 2);
        assert_eq!(guard.fences(FenceUsage::Bookkeep).count(), 3);
        assert!(guard.fences(FenceUsage::Bookkeep).all(|f| !f.is_signaled()));
        drop(guard);
        for fence in fences.drain_all() {
            fence.signal(Ok(()));
        }
        Ok(())
    }

    #[test]
    fn wait_for_write_fences() -> Result {
        let task = task()?;
        let resv = new_resv()?;
        let fence = FenceTimeline::new().prepare(&task)?.arm();
        {
            let mut guard = resv.lock(&task);
            guard.reserve_fences(1)?;
            guard.add_fence(fence.fence(), FenceUsage::Write)?;
        }
        assert!(resv.test_signaled(FenceUsage::Kernel));
        assert!(!resv.test_signaled(FenceUsage::Write));
        assert!(!resv.test_signaled(FenceUsage::Read));
        assert_eq!(resv.wait(&task, FenceUsage::Write, false, 10), Ok(false));
        fence.signal(Ok(()));
        assert_eq!(resv.wait(&task, FenceUsage::Read, true, 10), Ok(true));
        assert!(resv.test_signaled(FenceUsage::Bookkeep));
        Ok(())
    }
}
