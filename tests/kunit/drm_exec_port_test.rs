// SPDX-License-Identifier: GPL-2.0

//! KUnit suite `dmabuf_lock_drm_exec`: upstream's `drivers/gpu/drm/tests/drm_exec_test.c`
//! (suite `drm_exec`, loaded as the C control in the same boot) ported to [`ResvLocker`], case
//! by case. C locks GEM objects; a reservation is what `drm_exec` locks of each, so the Rust
//! cases lock [`OwnedResv`]s. C's cases check return codes; the Rust ones also check what is
//! locked afterwards.
//!
//! [`ResvLocker`]: crate::dmabuf_lock::locker::ResvLocker
//! [`OwnedResv`]: crate::dmabuf_lock::resv::OwnedResv

use kernel::prelude::*;

#[kunit_tests(dmabuf_lock_drm_exec)]
mod tests {
    use crate::{
        common::{new_resvs, task},
        dmabuf_lock::{
            locker::{LockerFlags, ResvLocker},
            resv::Resv,
        },
    };
    use kernel::prelude::*;
    use pin_init::stack_pin_init;

    /// `DRM_EXEC_INTERRUPTIBLE_WAIT`, the flags of most C cases.
    const INTERRUPTIBLE: LockerFlags = LockerFlags {
        interruptible: true,
        ignore_duplicates: false,
        fence_slots: 0,
    };

    /// C `sanitycheck`: a locker is created and finalised without locking anything.
    #[test]
    fn sanitycheck() -> Result {
        stack_pin_init!(let locker = ResvLocker::new(INTERRUPTIBLE));
        assert!(locker.locked().is_empty());
        assert_eq!(locker.stats().passes, 0);
        Ok(())
    }

    /// C `test_lock`: one object locked in a pass.
    #[test]
    fn lock() -> Result {
        let task = task()?;
        let objs = new_resvs(1)?;
        {
            stack_pin_init!(let locker = ResvLocker::new(INTERRUPTIBLE));
            locker
                .as_mut()
                .lock_all(&task, |pass| pass.lock(&objs[0]))?;
            assert_eq!(locker.locked().len(), 1);
            assert!(objs[0].is_locked());
        }
        assert!(!objs[0].is_locked());
        Ok(())
    }

    /// C `test_lock_unlock`: in one pass, lock, unlock and lock the object again.
    #[test]
    fn lock_unlock() -> Result {
        let task = task()?;
        let objs = new_resvs(1)?;
        let obj: &Resv = &objs[0];
        stack_pin_init!(let locker = ResvLocker::new(INTERRUPTIBLE));
        locker.as_mut().lock_all(&task, |pass| {
            pass.lock(obj)?;
            assert!(pass.unlock(obj));
            assert!(!obj.is_locked());
            pass.lock(obj)
        })?;
        assert_eq!(locker.locked().len(), 1);
        assert!(obj.is_locked());
        Ok(())
    }

    /// C `test_duplicates`: with `DRM_EXEC_IGNORE_DUPLICATES`, locking an object twice
    /// succeeds and lists it once; unlocking it after the loop leaves nothing locked.
    #[test]
    fn duplicates() -> Result {
        let task = task()?;
        let objs = new_resvs(1)?;
        let obj: &Resv = &objs[0];
        let flags = LockerFlags {
            ignore_duplicates: true,
            ..LockerFlags::default()
        };
        stack_pin_init!(let locker = ResvLocker::new(flags));
        locker.as_mut().lock_all(&task, |pass| {
            pass.lock(obj)?;
            pass.lock(obj)
        })?;
        assert_eq!(locker.locked().len(), 1);
        assert!(locker.as_mut().unlock(obj));
        assert!(locker.locked().is_empty());
        assert!(!obj.is_locked());
        assert!(!locker.as_mut().unlock(obj));
        Ok(())
    }

    /// C `test_prepare`: lock an object and reserve one fence slot on it.
    #[test]
    fn prepare() -> Result {
        let task = task()?;
        let objs = new_resvs(1)?;
        stack_pin_init!(let locker = ResvLocker::new(INTERRUPTIBLE));
        locker
            .as_mut()
            .lock_all(&task, |pass| pass.prepare(&objs[0], 1))?;
        assert_eq!(locker.locked().len(), 1);
        Ok(())
    }

    /// C `test_prepare_array`: lock two objects and reserve a slot on each in one call.
    #[test]
    fn prepare_array() -> Result {
        let task = task()?;
        let objs = new_resvs(2)?;
        let array: [&Resv; 2] = [&objs[0], &objs[1]];
        stack_pin_init!(let locker = ResvLocker::new(INTERRUPTIBLE));
        locker
            .as_mut()
            .lock_all(&task, |pass| pass.prepare_slice(&array, 1))?;
        assert_eq!(locker.locked().len(), 2);
        assert!(objs.iter().all(|o| o.is_locked()));
        Ok(())
    }

    /// C `test_multiple_loops`: two lockers one after the other, each leaving its loop at once.
    /// C `break`s out of the loop; a closure returns instead.
    #[test]
    fn multiple_loops() -> Result {
        let task = task()?;
        for _ in 0..2 {
            stack_pin_init!(let locker = ResvLocker::new(INTERRUPTIBLE));
            locker.as_mut().lock_all(&task, |_pass| Ok(()))?;
            assert_eq!(locker.stats().passes, 1);
            assert!(locker.locked().is_empty());
        }
        Ok(())
    }
}
