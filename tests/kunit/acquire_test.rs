// SPDX-License-Identifier: GPL-2.0

//! KUnit suite `dmabuf_lock_acquire`: acquire contexts, rounds and backoff (R6, R7).

use kernel::prelude::*;

#[kunit_tests(dmabuf_lock_acquire)]
mod tests {
    use crate::{
        common::{new_resvs, task},
        dmabuf_lock::acquire::{AcquireCtx, Acquired, LockError},
    };
    use kernel::prelude::*;
    use pin_init::stack_pin_init;

    #[test]
    fn two_objects_loop() -> Result {
        let task = task();
        let objs = new_resvs(2)?;
        stack_pin_init!(let ctx = AcquireCtx::new());
        let mut contended = None;
        loop {
            let round = ctx.as_mut().begin(&task, contended.take());
            let _a = match round.lock(&task, &objs[0]) {
                Ok(a) => a,
                Err(LockError::Deadlock(c)) => {
                    contended = Some(c);
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let _b = match round.lock(&task, &objs[1]) {
                Ok(b) => b,
                Err(LockError::Deadlock(c)) => {
                    contended = Some(c);
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            round.done();
            assert!(objs[0].is_locked() && objs[1].is_locked());
            break;
        }
        assert!(!objs[0].is_locked() && !objs[1].is_locked());
        Ok(())
    }

    #[test]
    fn duplicate_is_already_held() -> Result {
        let task = task();
        let objs = new_resvs(1)?;
        stack_pin_init!(let ctx = AcquireCtx::new());
        let round = ctx.as_mut().begin(&task, None);
        let first = round.lock(&task, &objs[0]).map_err(Error::from)?;
        assert!(matches!(first, Acquired::Locked(_)));
        let second = round.lock(&task, &objs[0]).map_err(Error::from)?;
        assert!(matches!(second, Acquired::AlreadyHeld));
        drop(first);
        assert!(!objs[0].is_locked());
        Ok(())
    }

    #[test]
    fn lock_after_done_fails() -> Result {
        let task = task();
        let objs = new_resvs(2)?;
        stack_pin_init!(let ctx = AcquireCtx::new());
        let round = ctx.as_mut().begin(&task, None);
        let _a = round.lock(&task, &objs[0]).map_err(Error::from)?;
        round.done();
        assert!(matches!(
            round.lock(&task, &objs[1]),
            Err(LockError::AfterDone)
        ));
        assert!(!objs[1].is_locked());
        Ok(())
    }

    /// Locks 16 objects in 200 contexts. `CONFIG_DEBUG_WW_MUTEX_SLOWPATH` injects `-EDEADLK`
    /// into context locks, so the backoff path runs; every context must end up holding all 16.
    #[test]
    fn backoff_under_injected_deadlocks() -> Result {
        let task = task();
        const OBJS: usize = 16;
        let objs = new_resvs(OBJS)?;
        let mut backoffs = 0u32;
        for _ in 0..200 {
            stack_pin_init!(let ctx = AcquireCtx::new());
            let mut contended = None;
            'round: loop {
                let round = ctx.as_mut().begin(&task, contended.take());
                let mut guards = KVec::with_capacity(OBJS, GFP_KERNEL)?;
                for obj in objs.iter() {
                    match round.lock(&task, obj) {
                        Ok(g) => guards.push(g, GFP_NOWAIT)?,
                        Err(LockError::Deadlock(c)) => {
                            backoffs += 1;
                            contended = Some(c);
                            continue 'round;
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                round.done();
                assert!(objs.iter().all(|o| o.is_locked()));
                break;
            }
        }
        pr_info!("backoff_under_injected_deadlocks: {backoffs} backoffs in 200 contexts\n");
        if cfg!(CONFIG_DEBUG_WW_MUTEX_SLOWPATH) {
            assert!(backoffs > 0);
        }
        assert!(objs.iter().all(|o| !o.is_locked()));
        Ok(())
    }
}
