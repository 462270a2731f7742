// SPDX-License-Identifier: GPL-2.0

//! KUnit suite `dmabuf_lock_st_dma_resv`: upstream's `drivers/dma-buf/st-dma-resv.c` (suite
//! `dma-buf-resv`, loaded as the C control in the same boot) ported to the library's API, case
//! by case. C runs each case once per usage as a parameter; here each case walks the four
//! usages itself (the Rust KUnit macro has no parameterised cases).

use kernel::prelude::*;

#[kunit_tests(dmabuf_lock_st_dma_resv)]
mod tests {
    use crate::{
        common::task,
        dmabuf_lock::{
            context::MayBlock,
            fence::{DriverFence, FenceTimeline},
            resv::{FenceUsage, OwnedResv},
        },
    };
    use kernel::prelude::*;

    const USAGES: [FenceUsage; 4] = [
        FenceUsage::Kernel,
        FenceUsage::Write,
        FenceUsage::Read,
        FenceUsage::Bookkeep,
    ];

    /// `alloc_fence()` followed by `dma_fence_enable_signaling()`, as every C case starts.
    fn new_fence(task: &MayBlock) -> Result<DriverFence> {
        let fence = FenceTimeline::new().prepare(task)?.arm();
        fence.fence().enable_signaling();
        Ok(fence)
    }

    /// A reservation holding `fence` as `usage`, unlocked again.
    fn resv_with(
        task: &MayBlock,
        fence: &DriverFence,
        usage: FenceUsage,
    ) -> Result<Pin<KBox<OwnedResv>>> {
        let resv = KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?;
        {
            let mut guard = resv.lock(task);
            guard.reserve_fences(1)?;
            guard.add_fence(fence.fence(), usage)?;
        }
        Ok(resv)
    }

    /// C `test_sanitycheck`: a fence signals, a reservation locks and unlocks.
    #[test]
    fn sanitycheck() -> Result {
        let task = task()?;
        new_fence(&task)?.signal(Ok(()));
        let resv = KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?;
        let guard = resv.lock_interruptible(&task)?;
        assert!(resv.is_locked());
        drop(guard);
        Ok(())
    }

    /// C `test_signaling`: the reservation is busy for the fence's usage until it signals.
    #[test]
    fn signaling() -> Result {
        let task = task()?;
        for usage in USAGES {
            let fence = new_fence(&task)?;
            let resv = KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?;
            let mut guard = resv.lock(&task);
            guard.reserve_fences(1)?;
            guard.add_fence(fence.fence(), usage)?;
            assert!(!resv.test_signaled(usage));
            fence.signal(Ok(()));
            assert!(resv.test_signaled(usage));
        }
        Ok(())
    }

    /// C `test_for_each`: the locked iterator yields exactly the fence, with its usage.
    #[test]
    fn for_each() -> Result {
        let task = task()?;
        for usage in USAGES {
            let fence = new_fence(&task)?;
            let resv = KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?;
            let mut guard = resv.lock(&task);
            guard.reserve_fences(1)?;
            guard.add_fence(fence.fence(), usage)?;
            let mut found = 0;
            for (f, u) in guard.fence_entries(usage) {
                assert!(core::ptr::eq(f, fence.fence()));
                assert_eq!(u, usage);
                found += 1;
            }
            assert_eq!(found, 1);
            fence.signal(Ok(()));
        }
        Ok(())
    }

    /// C `test_for_each_unlocked`: the unlocked iterator yields the fence with the restart flag
    /// set, and again, flagged again, after the walk had to start over. C forces the restart by
    /// writing a bogus list pointer into the cursor, which the Rust iterator does not expose; here
    /// the fence list is really replaced between two steps (a reservation of more slots than the
    /// list has reallocates it), which is what the restart is for.
    #[test]
    fn for_each_unlocked() -> Result {
        let task = task()?;
        for usage in USAGES {
            let fence = new_fence(&task)?;
            let resv = resv_with(&task, &fence, usage)?;
            let mut walks = 0;
            for item in resv.fences_unlocked(usage) {
                assert!(item.restarted);
                assert!(core::ptr::eq(&*item.fence, fence.fence()));
                assert_eq!(item.usage, usage);
                walks += 1;
                if walks == 1 {
                    resv.lock(&task).reserve_fences(64)?;
                }
            }
            assert_eq!(walks, 2);
            fence.signal(Ok(()));
        }
        Ok(())
    }

    /// C `test_get_fences`: the snapshot holds exactly the fence.
    #[test]
    fn get_fences() -> Result {
        let task = task()?;
        for usage in USAGES {
            let fence = new_fence(&task)?;
            let resv = resv_with(&task, &fence, usage)?;
            let fences = resv.get_fences(&task, usage)?;
            assert_eq!(fences.as_slice().len(), 1);
            assert!(core::ptr::eq(fences.as_slice()[0], fence.fence()));
            fence.signal(Ok(()));
        }
        Ok(())
    }
}
