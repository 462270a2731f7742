// SPDX-License-Identifier: GPL-2.0

//! KUnit suite `dmabuf_lock_lockdep`: lockdep maps, might-lock, reclaim scopes and priming
//! (R2, R9). The boot that runs it must end with lockdep still on: every annotation made here
//! is in the allowed order.

use kernel::prelude::*;

#[kunit_tests(dmabuf_lock_lockdep)]
mod tests {
    use crate::{
        common::task,
        dmabuf_lock::{
            lockdep::{Level, LockOrder, LockdepMap, MightLock},
            resv::OwnedResv,
        },
    };
    use kernel::{new_mutex, new_spinlock, prelude::*, sync::static_lock_class};

    #[test]
    fn map_nests_under_reservation() -> Result {
        let task = task()?;
        let ring = KBox::pin_init(
            LockdepMap::new(c"test_ring", static_lock_class!()),
            GFP_KERNEL,
        )?;
        let resv = KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?;
        let guard = resv.lock(&task);
        let exclusive = ring.acquire();
        drop(exclusive);
        let shared = ring.acquire_read();
        drop(shared);
        drop(guard);
        Ok(())
    }

    #[test]
    fn might_lock_annotates_without_locking() -> Result {
        let mutex = KBox::pin_init(new_mutex!(0u32, "test_might_mutex"), GFP_KERNEL)?;
        let spin = KBox::pin_init(new_spinlock!(0u32, "test_might_spin"), GFP_KERNEL)?;
        let resv = KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?;
        mutex.might_lock();
        spin.might_lock();
        resv.might_lock();
        assert!(!resv.is_locked());
        assert!(mutex.try_lock().is_some());
        Ok(())
    }

    #[test]
    fn reclaim_scope_trylocks() -> Result {
        let mut task = task()?;
        let resv = KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?;
        let held = resv.lock(&task);
        {
            let reclaim = task.reclaim_scope();
            assert!(reclaim.try_lock(&resv).is_none());
        }
        drop(held);
        let reclaim = task.reclaim_scope();
        let evict = reclaim.try_lock(&resv);
        assert!(evict.is_some());
        Ok(())
    }

    #[test]
    fn orders_that_break_rules_are_refused() -> Result {
        let task = task()?;
        let refused = [
            LockOrder::new(c"r1")
                .then(Level::Resv)
                .then(Level::MmapLock),
            LockOrder::new(c"r2").then(Level::Reclaim).then(Level::Resv),
            LockOrder::new(c"r3")
                .then(Level::FenceWait)
                .then(Level::Resv),
            LockOrder::new(c"r4")
                .then(Level::Signalling)
                .then(Level::Reclaim),
            LockOrder::new(c"r4w")
                .then(Level::Signalling)
                .then(Level::FenceWait),
            LockOrder::new(c"short").then(Level::Resv),
        ];
        for order in refused.iter() {
            assert_eq!(order.prime(&task), Err(EINVAL));
        }
        let spin = KBox::pin_init(new_spinlock!(0u32, "test_order_spin"), GFP_KERNEL)?;
        let sleeping_in_spinlock = LockOrder::new(c"spin")
            .then(Level::Driver(&*spin, c"test_order_spin"))
            .then(Level::Resv);
        assert_eq!(sleeping_in_spinlock.prime(&task), Err(EINVAL));
        Ok(())
    }

    #[test]
    fn driver_orders_prime() -> Result {
        let task = task()?;
        let vm = KBox::pin_init(new_mutex!(0u32, "test_vm_lock"), GFP_KERNEL)?;
        let jobs = KBox::pin_init(new_spinlock!(0u32, "test_job_lock"), GFP_KERNEL)?;
        LockOrder::new(c"vm")
            .then(Level::Driver(&*vm, c"test_vm_lock"))
            .then(Level::Resv)
            .then(Level::Reclaim)
            .then(Level::FenceWait)
            .prime(&task)?;
        LockOrder::new(c"jobs")
            .then(Level::Signalling)
            .then(Level::Driver(&*jobs, c"test_job_lock"))
            .prime(&task)?;
        Ok(())
    }
}
