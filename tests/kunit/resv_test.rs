// SPDX-License-Identifier: GPL-2.0

//! KUnit suite `dmabuf_lock_resv`: single-object locking of reservations (R2, R7, R10).

use kernel::prelude::*;

#[kunit_tests(dmabuf_lock_resv)]
mod tests {
    use crate::dmabuf_lock::resv::{OwnedResv, Resv};
    use kernel::prelude::*;

    fn new_resv() -> Result<Pin<KBox<OwnedResv>>> {
        KBox::pin_init(OwnedResv::new(), GFP_KERNEL)
    }

    #[test]
    fn owned_resv_lifecycle() -> Result {
        let resv = new_resv()?;
        assert!(!resv.is_locked());
        let guard = resv.lock();
        assert!(resv.is_locked());
        assert!(core::ptr::eq(guard.resv(), &**resv));
        drop(guard);
        assert!(!resv.is_locked());
        Ok(())
    }

    #[test]
    fn try_lock_against_held() -> Result {
        let resv = new_resv()?;
        let held = resv.lock();
        assert!(resv.try_lock().is_none());
        drop(held);
        let guard = resv.try_lock();
        assert!(guard.is_some());
        assert!(resv.is_locked());
        Ok(())
    }

    #[test]
    fn lock_interruptible_without_signal() -> Result {
        let resv = new_resv()?;
        let guard = resv.lock_interruptible()?;
        assert!(guard.resv().is_locked());
        Ok(())
    }

    #[test]
    fn guard_reserves_fences() -> Result {
        let resv = new_resv()?;
        let guard = resv.lock();
        guard.reserve_fences(2)?;
        // Allocation under a reservation is allowed (R2): lockdep must stay quiet here.
        let v: KVec<u64> = KVec::with_capacity(512, GFP_KERNEL)?;
        assert!(v.capacity() >= 512);
        Ok(())
    }

    #[test]
    fn resv_from_raw() -> Result {
        let owned = new_resv()?;
        // SAFETY: `owned` is initialised and outlives `view`.
        let view = unsafe { Resv::from_raw(owned.as_raw()) };
        let guard = view.lock();
        assert!(owned.is_locked());
        drop(guard);
        assert!(!owned.is_locked());
        Ok(())
    }
}
