// SPDX-License-Identifier: GPL-2.0

//! KUnit suite `dmabuf_lock_locker`: the multi-object locker (R2, R6, R7).

use kernel::prelude::*;

#[kunit_tests(dmabuf_lock_locker)]
mod tests {
    use crate::{
        common::{new_resvs, task, Objects, PendingSignal},
        dmabuf_lock::{
            context::MayBlock,
            fence::FenceTimeline,
            locker::{LockerFlags, Pass, PassError, ResvLocker},
            resv::{FenceUsage, OwnedResv, Resv, ResvGuard},
        },
    };
    use kernel::{
        prelude::*,
        sync::{
            atomic::{Atomic, Relaxed},
            Arc, Completion,
        },
    };
    use pin_init::{stack_pin_init, stack_try_pin_init};

    fn refs(objs: &Objects) -> Result<KVec<&Resv>> {
        let mut v = KVec::with_capacity(objs.len(), GFP_KERNEL)?;
        for o in objs.iter() {
            v.push(&***o, GFP_KERNEL)?;
        }
        Ok(v)
    }

    #[test]
    fn lock_slice_and_closure() -> Result {
        let task = task()?;
        let objs = new_resvs(3)?;
        let all = refs(&objs)?;
        {
            stack_pin_init!(let locker = ResvLocker::new(LockerFlags::default()));
            locker.as_mut().lock_slice(&task, &all)?;
            assert_eq!(locker.locked().len(), 3);
            assert!(objs.iter().all(|o| o.is_locked()));
        }
        assert!(objs.iter().all(|o| !o.is_locked()));
        {
            stack_pin_init!(let locker = ResvLocker::new(LockerFlags::default()));
            locker.as_mut().lock_all(&task, |pass| {
                pass.lock(all[2])?;
                pass.lock(all[0])?;
                Ok(())
            })?;
            assert!(core::ptr::eq(locker.locked()[0].resv(), all[2]));
            assert!(!objs[1].is_locked());
            locker.as_mut().unlock_all();
            assert!(!objs[0].is_locked() && !objs[2].is_locked());
        }
        stack_pin_init!(let by_iter = ResvLocker::new(LockerFlags::default()));
        by_iter
            .as_mut()
            .lock_iter(&task, objs.iter().skip(1).map(|o| &***o))?;
        assert_eq!(by_iter.locked().len(), 2);
        assert!(!objs[0].is_locked() && objs[1].is_locked() && objs[2].is_locked());
        Ok(())
    }

    #[test]
    fn duplicates_rejected_or_ignored() -> Result {
        let task = task()?;
        let objs = new_resvs(2)?;
        let all = refs(&objs)?;
        let twice = [all[0], all[1], all[0]];
        {
            stack_pin_init!(let locker = ResvLocker::new(LockerFlags::default()));
            assert_eq!(locker.as_mut().lock_slice(&task, &twice), Err(EALREADY));
            assert!(locker.locked().is_empty());
            assert!(objs.iter().all(|o| !o.is_locked()));
        }
        let flags = LockerFlags {
            ignore_duplicates: true,
            ..Default::default()
        };
        stack_pin_init!(let locker = ResvLocker::new(flags));
        locker.as_mut().lock_slice(&task, &twice)?;
        assert_eq!(locker.locked().len(), 2);
        Ok(())
    }

    /// A `lock_all` that failed leaves nothing held: the next one starts its first pass from an
    /// empty list (the locker's invariant; `lock_all` no longer empties the list before that
    /// pass).
    #[test]
    fn failed_lock_all_leaves_nothing_for_the_next() -> Result {
        let task = task()?;
        let objs = new_resvs(2)?;
        let all = refs(&objs)?;
        stack_pin_init!(let locker = ResvLocker::new(LockerFlags::default()));
        assert_eq!(
            locker.as_mut().lock_slice(&task, &[all[0], all[1], all[0]]),
            Err(EALREADY)
        );
        assert!(locker.locked().is_empty());
        locker.as_mut().lock_slice(&task, &[all[1]])?;
        assert_eq!(locker.locked().len(), 1);
        assert!(!objs[0].is_locked() && objs[1].is_locked());
        Ok(())
    }

    #[test]
    fn fence_slots_reserved_on_each() -> Result {
        let task = task()?;
        let objs = new_resvs(4)?;
        let all = refs(&objs)?;
        let flags = LockerFlags {
            fence_slots: 3,
            ..Default::default()
        };
        stack_pin_init!(let locker = ResvLocker::new(flags));
        locker.as_mut().lock_slice(&task, &all)?;
        assert_eq!(locker.locked().len(), 4);
        Ok(())
    }

    /// With `CONFIG_DEBUG_WW_MUTEX_SLOWPATH` injecting `-EDEADLK`, many passes back off; the
    /// array of held locks must grow only as often as one clean pass over 16 objects needs.
    #[test]
    fn backoff_does_not_allocate() -> Result {
        let task = task()?;
        let objs = new_resvs(16)?;
        let all = refs(&objs)?;
        let baseline = {
            stack_pin_init!(let locker = ResvLocker::new(LockerFlags::default()));
            locker.as_mut().lock_all(&task, |pass| {
                for r in all.iter() {
                    pass.lock(r)?;
                }
                Ok(())
            })?;
            locker.stats()
        };
        let (mut backoffs, mut extra) = (0, 0);
        for _ in 0..200 {
            stack_pin_init!(let locker = ResvLocker::new(LockerFlags::default()));
            locker.as_mut().lock_slice(&task, &all)?;
            let stats = locker.stats();
            backoffs += stats.backoffs;
            if stats.backoffs > 0 && stats.allocations > baseline.allocations + baseline.backoffs {
                extra += 1;
            }
        }
        pr_info!(
            "backoff_does_not_allocate: {backoffs} backoffs, {} allocations per clean pass, {extra} lockers allocated more\n",
            baseline.allocations
        );
        assert_eq!(extra, 0);
        if cfg!(CONFIG_DEBUG_WW_MUTEX_SLOWPATH) {
            assert!(backoffs > 0);
        }
        Ok(())
    }

    /// Runs `pass_fn` in 100 fresh lockers over `all` and `check` on each locker that backed
    /// off at least once (`CONFIG_DEBUG_WW_MUTEX_SLOWPATH` injects `-EDEADLK`, so some do).
    fn on_lockers_that_backed_off<'o>(
        name: &str,
        all: &[&'o Resv],
        mut pass_fn: impl FnMut(&mut Pass<'_, 'o>, bool) -> core::result::Result<(), PassError>,
        mut check: impl FnMut(&[ResvGuard<'o>]),
    ) -> Result {
        let task = task()?;
        let mut backed_off = 0;
        for _ in 0..100 {
            stack_pin_init!(let locker = ResvLocker::new(LockerFlags::default()));
            let mut first_pass = true;
            locker.as_mut().lock_all(&task, |pass| {
                pass_fn(pass, core::mem::replace(&mut first_pass, false))
            })?;
            if locker.stats().backoffs > 0 {
                backed_off += 1;
                check(locker.locked());
            }
        }
        pr_info!(
            "{name}: {backed_off} of 100 lockers over {} objects backed off\n",
            all.len()
        );
        if cfg!(CONFIG_DEBUG_WW_MUTEX_SLOWPATH) {
            assert!(backed_off > 0);
        }
        Ok(())
    }

    /// After backoffs, `locked()` lists the objects in the order the final pass locked them, as
    /// `drm_exec` does (drivers index by position), not with the contended object first.
    #[test]
    fn locked_in_final_pass_order() -> Result {
        let objs = new_resvs(8)?;
        let all = refs(&objs)?;
        on_lockers_that_backed_off(
            "locked_in_final_pass_order",
            &all,
            |pass, _| {
                for resv in all.iter() {
                    pass.lock(resv)?;
                }
                Ok(())
            },
            |locked| {
                assert_eq!(locked.len(), all.len());
                assert!(locked
                    .iter()
                    .zip(all.iter())
                    .all(|(guard, resv)| core::ptr::eq(guard.resv(), *resv)));
            },
        )
    }

    /// The object taken on the slow path is unlocked, and not listed, when the final pass does
    /// not ask for it again (`drm_exec` drops it the same way).
    #[test]
    fn contended_object_dropped_when_not_asked_again() -> Result {
        let objs = new_resvs(8)?;
        let all = refs(&objs)?;
        on_lockers_that_backed_off(
            "contended_object_dropped_when_not_asked_again",
            &all,
            // The first pass asks for every object, later ones only for the first.
            |pass, first| {
                for resv in if first { &all[..] } else { &all[..1] } {
                    pass.lock(resv)?;
                }
                Ok(())
            },
            |locked| {
                assert_eq!(locked.len(), 1);
                assert!(objs[1..].iter().all(|o| !o.is_locked()));
            },
        )
    }

    /// `ResvLocker::with_capacity` allocates the array up front: a pass over as many objects
    /// allocates nothing more (`drm_exec_init()`'s size hint).
    #[test]
    fn capacity_hint_allocates_up_front() -> Result {
        let task = task()?;
        let objs = new_resvs(8)?;
        let all = refs(&objs)?;
        {
            stack_try_pin_init!(let locker =? ResvLocker::with_capacity(LockerFlags::default(), 8));
            locker.as_mut().lock_slice(&task, &all)?;
            assert_eq!(locker.stats().allocations, 0);
        }
        // One acquire context at a time (R6): the first locker is gone before this one locks.
        stack_pin_init!(let unsized_locker = ResvLocker::new(LockerFlags::default()));
        unsized_locker.as_mut().lock_slice(&task, &all)?;
        assert!(unsized_locker.stats().allocations > 0);
        Ok(())
    }

    /// A pass may unlock what it locked, including the object taken on the slow path before
    /// the pass asked for it, and lock it again (`drm_exec_unlock_obj()` in the loop); the
    /// others keep their order.
    #[test]
    fn unlock_in_a_pass_after_backoffs() -> Result {
        let objs = new_resvs(8)?;
        let all = refs(&objs)?;
        on_lockers_that_backed_off(
            "unlock_in_a_pass_after_backoffs",
            &all,
            |pass, _| {
                // The contended object, if any, is held before the pass starts.
                for resv in all.iter() {
                    pass.unlock(resv);
                    assert!(!resv.is_locked());
                }
                for resv in all.iter() {
                    pass.lock(resv)?;
                }
                assert!(pass.unlock(all[3]));
                assert!(!pass.unlock(all[3]));
                pass.lock(all[3])
            },
            |locked| {
                let order = [0, 1, 2, 4, 5, 6, 7, 3];
                assert_eq!(locked.len(), order.len());
                assert!(locked
                    .iter()
                    .zip(order)
                    .all(|(guard, i)| core::ptr::eq(guard.resv(), all[i])));
            },
        )
    }

    /// A second `lock_all` on a locker that succeeded is `EINVAL` at once: the closure does not
    /// run and the locks of the first call stay (before, it ran the closure, dropped the first
    /// set and then failed). `reset` starts over.
    #[test]
    fn second_lock_all_keeps_the_first_set() -> Result {
        let task = task()?;
        let objs = new_resvs(2)?;
        let all = refs(&objs)?;
        stack_pin_init!(let locker = ResvLocker::new(LockerFlags::default()));
        locker.as_mut().lock_slice(&task, &all[..1])?;
        let mut ran = false;
        let again = locker.as_mut().lock_all(&task, |pass| {
            ran = true;
            pass.lock(all[1])
        });
        assert_eq!(again, Err(EINVAL));
        assert!(!ran);
        assert_eq!(locker.locked().len(), 1);
        assert!(objs[0].is_locked() && !objs[1].is_locked());
        locker.as_mut().reset();
        locker.as_mut().lock_slice(&task, &all[1..])?;
        assert!(!objs[0].is_locked() && objs[1].is_locked());
        Ok(())
    }

    /// Lock-only and prepared objects mix in one pass (`drm_exec_lock_obj()` and
    /// `drm_exec_prepare_obj()`); preparing with 0 slots is `EINVAL`, not the kernel's warning.
    #[test]
    fn lock_only_and_prepare_in_one_pass() -> Result {
        let task = task()?;
        let objs = new_resvs(2)?;
        let all = refs(&objs)?;
        let fence = FenceTimeline::new().prepare(&task)?.arm();
        {
            stack_pin_init!(let locker = ResvLocker::new(LockerFlags::default()));
            locker.as_mut().lock_all(&task, |pass| {
                pass.lock(all[0])?;
                pass.prepare(all[1], 2)?;
                Ok(())
            })?;
            let mut held = locker.as_mut().locked_mut();
            let (Some(mut lock_only), Some(mut prepared)) = (held.next(), held.next()) else {
                return Err(EINVAL);
            };
            assert_eq!(
                lock_only.add_fence(fence.fence(), FenceUsage::Write),
                Err(ENOSPC)
            );
            prepared.add_fence(fence.fence(), FenceUsage::Write)?;
        }
        {
            stack_pin_init!(let locker = ResvLocker::new(LockerFlags::default()));
            let zero = locker.as_mut().lock_all(&task, |pass| {
                pass.prepare(all[0], 0)?;
                Ok(())
            });
            assert_eq!(zero, Err(EINVAL));
            assert!(!objs[0].is_locked());
        }
        fence.signal(Ok(()));
        Ok(())
    }

    /// A locker reused job after job with `reset` keeps its array: only the first job allocates.
    #[test]
    fn reset_reuses_the_locker() -> Result {
        let task = task()?;
        let objs = new_resvs(8)?;
        let all = refs(&objs)?;
        stack_pin_init!(let locker = ResvLocker::new(LockerFlags::default()));
        locker.as_mut().lock_slice(&task, &all)?;
        let after_first = locker.stats().allocations;
        for round in 0..50usize {
            locker.as_mut().reset();
            assert!(objs.iter().all(|o| !o.is_locked()));
            let n = 1 + round % all.len();
            locker.as_mut().lock_slice(&task, &all[..n])?;
            assert_eq!(locker.locked().len(), n);
        }
        assert_eq!(locker.stats().allocations, after_first);
        locker.as_mut().reset();
        assert!(objs.iter().all(|o| !o.is_locked()));
        Ok(())
    }

    #[pin_data]
    struct Holder {
        #[pin]
        resv: OwnedResv,
        #[pin]
        locked: Completion,
        #[pin]
        release: Completion,
    }

    impl Holder {
        /// A work item locks a new reservation, alone or in an acquire context of its own begun
        /// now, and holds it until `release` completes. Returns once the work item has tried;
        /// `resv.is_locked()` says whether it holds it.
        fn hold_new(in_context: bool) -> Result<Arc<Self>> {
            let holder = Arc::pin_init(
                pin_init!(Holder {
                    resv <- OwnedResv::new(),
                    locked <- Completion::new(),
                    release <- Completion::new(),
                }),
                GFP_KERNEL,
            )?;
            let h = holder.clone();
            crate::work::spawn(crate::work::system_dfl(), move || {
                let Ok(task) = MayBlock::new() else {
                    h.locked.complete_all();
                    return;
                };
                // No acquire context may be open around a lock taken without one: the context
                // is one of the class's locks to lockdep.
                if in_context {
                    stack_pin_init!(let locker = ResvLocker::new(LockerFlags::default()));
                    let _ = locker.as_mut().lock_slice(&task, &[&*h.resv]);
                    h.hold_until_released();
                } else {
                    let _guard = h.resv.lock(&task);
                    h.hold_until_released();
                }
            })?;
            holder.locked.wait_for_completion();
            if !holder.resv.is_locked() {
                holder.release.complete_all();
                return Err(ENOMEM);
            }
            Ok(holder)
        }

        fn hold_until_released(&self) {
            self.locked.complete_all();
            self.release.wait_for_completion();
        }
    }

    /// A work item holds the reservation; a pending signal makes every interruptible way to
    /// lock it return `EINTR`, and the non-blocking ones simply fail.
    #[test]
    fn interruptible_with_pending_signal() -> Result {
        let task = task()?;
        let holder = Holder::hold_new(false)?;
        let single;
        let multi;
        {
            let _signal = PendingSignal::raise();
            single = holder.resv.lock_interruptible(&task).err();
            let flags = LockerFlags {
                interruptible: true,
                ..Default::default()
            };
            stack_pin_init!(let locker = ResvLocker::new(flags));
            multi = locker.as_mut().lock_slice(&task, &[&*holder.resv]).err();
        }
        holder.release.complete_all();
        assert_eq!(single, Some(EINTR));
        assert_eq!(multi, Some(EINTR));
        // Once the holder is done, the same calls succeed.
        drop(holder.resv.lock_interruptible(&task)?);
        Ok(())
    }

    /// A locker backs off from a reservation that an older context holds, and a pending signal
    /// interrupts its wait for it on the slow path: `lock_all` fails with `EINTR`. The same
    /// locker then locks another reservation. With lock debugging, the context still named the
    /// reservation it had backed off from as the one it must take next, and the kernel warned
    /// ("DEBUG_LOCKS_WARN_ON(ww_ctx->contending_lock != ww)") and turned lock debugging off;
    /// a failed `lock_all` now starts a fresh context.
    #[test]
    fn interrupted_slow_path_then_another_set() -> Result {
        let task = task()?;
        // Its context begins before the test's: it is the older one, which wins.
        let holder = Holder::hold_new(true)?;
        let debug_locks = || {
            // SAFETY: `debug_locks` is a kernel global, only read here.
            unsafe { core::ptr::read_volatile(&raw const kernel::bindings::debug_locks) }
        };
        let debugging = debug_locks();
        let other = KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?;
        let flags = LockerFlags {
            interruptible: true,
            ..Default::default()
        };
        stack_pin_init!(let locker = ResvLocker::new(flags));
        // The signal comes once the pass has backed off: pending earlier, it would end the wait
        // for the older context's lock before the back-off.
        let mut signal = None;
        let interrupted = locker.as_mut().lock_all(&task, |pass| {
            pass.lock(&other)?;
            let contended = pass.lock(&holder.resv);
            if contended.is_err() && signal.is_none() {
                signal = Some(PendingSignal::raise());
            }
            contended
        });
        drop(signal);
        holder.release.complete_all();
        assert_eq!(interrupted, Err(EINTR));
        assert_eq!(locker.stats().backoffs, 1);
        assert!(locker.locked().is_empty() && !other.is_locked());
        locker.as_mut().lock_slice(&task, &[&*other])?;
        assert_eq!(locker.locked().len(), 1);
        // The kernel's lock debugging did not find a fault and turn itself off.
        assert_eq!(debug_locks(), debugging);
        Ok(())
    }

    #[test]
    fn interruptible_without_signal() -> Result {
        let task = task()?;
        let objs = new_resvs(2)?;
        let all = refs(&objs)?;
        let flags = LockerFlags {
            interruptible: true,
            ..Default::default()
        };
        stack_pin_init!(let locker = ResvLocker::new(flags));
        locker.as_mut().lock_slice(&task, &all)?;
        assert_eq!(locker.locked().len(), 2);
        Ok(())
    }

    #[pin_data]
    struct Contention {
        objs: Objects,
        backoffs: Atomic<u32>,
        #[pin]
        forward_done: Completion,
        #[pin]
        backward_done: Completion,
    }

    const ROUNDS: u32 = 300;

    fn lock_rounds(shared: &Contention, backward: bool) -> Result {
        let task = MayBlock::new()?;
        let mut order = refs(&shared.objs)?;
        if backward {
            order.reverse();
        }
        for _ in 0..ROUNDS {
            stack_pin_init!(let locker = ResvLocker::new(LockerFlags::default()));
            locker.as_mut().lock_slice(&task, &order)?;
            if locker.locked().len() != order.len() {
                return Err(EINVAL);
            }
            shared.backoffs.add(locker.stats().backoffs, Relaxed);
        }
        Ok(())
    }

    /// Two work items, on the two CPUs, lock the same 16 objects in opposite orders for a fixed
    /// number of rounds: both must finish (a deadlock would trip the hung-task detector).
    #[test]
    fn two_workers_opposite_orders() -> Result {
        let objs = new_resvs(16)?;
        let shared = Arc::pin_init(
            pin_init!(Contention {
                objs,
                backoffs: Atomic::new(0),
                forward_done <- Completion::new(),
                backward_done <- Completion::new(),
            }),
            GFP_KERNEL,
        )?;
        let failures = Arc::new(Atomic::new(0u32), GFP_KERNEL)?;
        for backward in [false, true] {
            let (s, f) = (shared.clone(), failures.clone());
            crate::work::spawn(crate::work::system_dfl(), move || {
                if lock_rounds(&s, backward).is_err() {
                    f.add(1, Relaxed);
                }
                if backward {
                    s.backward_done.complete_all();
                } else {
                    s.forward_done.complete_all();
                }
            })?;
        }
        shared.forward_done.wait_for_completion();
        shared.backward_done.wait_for_completion();
        let backoffs = shared.backoffs.load(Relaxed);
        pr_info!(
            "two_workers_opposite_orders: 2 x {ROUNDS} rounds over 16 objects, {backoffs} backoffs\n"
        );
        assert_eq!(failures.load(Relaxed), 0);
        assert!(backoffs > 0);
        assert!(shared.objs.iter().all(|o| !o.is_locked()));
        Ok(())
    }
}
