// SPDX-License-Identifier: GPL-2.0

//! KUnit suite `dmabuf_lock_soundness`: the run-time side of `Documentation/soundness.md`
//! (fence slot bounds, fence contexts that may signal out of order, module references held by
//! fences and callbacks, callbacks racing the signal, proofs that may block) (R3, R6, R8).
//! The compile-time side is in `compile-fail/`, the leak cases in `tests/lockdep/sound_*`.

use kernel::prelude::*;

#[kunit_tests(dmabuf_lock_soundness)]
mod tests {
    use crate::{
        common::{
            counter, counting_callback, dl_core_module, dma_fence_array_create, new_resvs, task,
        },
        dmabuf_lock::{
            context::MayBlock,
            fence::{CallbackStatus, Fence, FenceTimeline},
            locker::{LockerFlags, ResvLocker},
            resv::{FenceUsage, MAX_FENCE_RESERVE},
        },
        DmabufLockTest,
    };
    use kernel::{
        bindings,
        prelude::*,
        sync::{aref::ARef, atomic::Relaxed, Arc, Completion},
    };
    use pin_init::stack_pin_init;

    /// This module's reference count.
    fn module_refs() -> i32 {
        let module = kernel::module::this_module::<DmabufLockTest>().as_ptr();
        // SAFETY: The module is live: its code is running.
        unsafe { kernel::bindings::module_refcount(module) }
    }

    /// The reference count of `dmabuf_lock.ko`, where the driver fences' ops live.
    fn core_refs() -> i32 {
        // SAFETY: `dmabuf_lock.ko` is loaded while this module, which links against it, is.
        unsafe { kernel::bindings::module_refcount(dl_core_module()) }
    }

    /// `reserve_fences(0)` made the kernel warn, and a huge count could wrap its 32-bit slot
    /// arithmetic; both are refused before the C function sees them.
    #[test]
    fn reserve_fences_refuses_zero_and_huge_counts() -> Result {
        let task = task()?;
        let objs = new_resvs(1)?;
        let mut guard = objs[0].lock(&task);
        assert_eq!(guard.reserve_fences(0), Err(EINVAL));
        assert_eq!(guard.reserve_fences(MAX_FENCE_RESERVE + 1), Err(EINVAL));
        assert_eq!(guard.reserve_fences(u32::MAX), Err(EINVAL));
        assert_eq!(guard.reserve_fences(1), Ok(()));
        Ok(())
    }

    /// A container fence (here a `dma_fence_array` of two driver fences) is refused before
    /// `dma_resv_add_fence()` sees it: the C function warns on one, and safe code must not be able
    /// to make the kernel warn.
    #[test]
    fn container_fence_refused() -> Result {
        let task = task()?;
        let objs = new_resvs(1)?;
        let timeline = FenceTimeline::new();
        let (a, b) = (
            timeline.prepare(&task)?.arm(),
            timeline.prepare(&task)?.arm(),
        );
        let mut members = KVec::with_capacity(2, GFP_KERNEL)?;
        for fence in [a.fence(), b.fence()] {
            let fence: ARef<Fence> = fence.into();
            members.push(
                ARef::into_raw(fence).as_ptr().cast::<bindings::dma_fence>(),
                GFP_KERNEL,
            )?;
        }
        let (ptr, _, _) = members.into_raw_parts();
        // SAFETY: `dma_fence_context_alloc` has no preconditions.
        let context = unsafe { bindings::dma_fence_context_alloc(1) };
        // SAFETY: `ptr` is a kmalloc'd array of 2 fence pointers, each holding a reference, which
        // the fence array takes over with the array itself (it puts and frees them on release).
        let array = unsafe { dma_fence_array_create(2, ptr, context, 1) };
        // (On failure the two references and the pointer array leak: this is a test.)
        let array = core::ptr::NonNull::new(array).ok_or(ENOMEM)?;
        // SAFETY: The array's first member is its fence, and its one reference is ours.
        let container: ARef<Fence> = unsafe { ARef::from_raw(array.cast::<Fence>()) };
        {
            let mut guard = objs[0].lock(&task);
            guard.reserve_fences(1)?;
            assert_eq!(guard.add_fence(&container, FenceUsage::Write), Err(EINVAL));
            guard.add_fence(a.fence(), FenceUsage::Write)?;
        }
        a.signal(Ok(()));
        b.signal(Ok(()));
        assert!(container.is_signaled());
        Ok(())
    }

    /// Two fences of one timeline, the later one signalled first: the reservation must still
    /// wait for the earlier one. (With one fence context per timeline the later fence replaced
    /// the earlier one, and the reservation looked idle while the first job still ran.)
    #[test]
    fn timeline_fences_may_signal_in_any_order() -> Result {
        let task = task()?;
        let objs = new_resvs(1)?;
        let timeline = FenceTimeline::new();
        let first = timeline.prepare(&task)?.arm();
        let second = timeline.prepare(&task)?.arm();
        {
            let mut guard = objs[0].lock(&task);
            guard.reserve_fences(2)?;
            guard.add_fence(first.fence(), FenceUsage::Write)?;
            guard.add_fence(second.fence(), FenceUsage::Write)?;
        }
        second.signal(Ok(()));
        assert!(!objs[0].test_signaled(FenceUsage::Write));
        first.signal(Ok(()));
        assert!(objs[0].test_signaled(FenceUsage::Write));
        Ok(())
    }

    /// An unsignalled driver fence points at its `ops`, which live in `dmabuf_lock.ko`: it pins
    /// that module until it signals, whichever way it signals, and pins nothing of the module
    /// that armed it.
    #[test]
    fn driver_fence_pins_its_ops_until_signalled() -> Result {
        let task = task()?;
        let timeline = FenceTimeline::new();
        let (core, own) = (core_refs(), module_refs());
        let fence = timeline.prepare(&task)?.arm();
        assert_eq!((core_refs(), module_refs()), (core + 1, own));
        fence.signal(Ok(()));
        assert_eq!(core_refs(), core);
        let fence = timeline.prepare(&task)?.arm();
        assert_eq!(core_refs(), core + 1);
        fence.cancel();
        assert_eq!(core_refs(), core);
        Ok(())
    }

    /// A registered callback points at its trampoline in this module: it holds a module
    /// reference until it is removed; one that could not be registered holds none.
    #[test]
    fn fence_callback_pins_module_while_registered() -> Result {
        let task = task()?;
        let calls = counter()?;
        let fence = FenceTimeline::new().prepare(&task)?.arm();
        let before = module_refs();
        let mut cb = counting_callback(&calls)?;
        assert_eq!(cb.as_mut().add(fence.fence())?, CallbackStatus::Registered);
        assert_eq!(module_refs(), before + 1);
        fence.signal(Ok(()));
        assert_eq!(calls.load(Relaxed), 1);
        // The callback has run but is still owned, and holds its reference until dropped.
        assert_eq!(module_refs(), before + 1);
        drop(cb);
        assert_eq!(module_refs(), before);
        let signalled = FenceTimeline::new().prepare(&task)?.arm();
        let published: kernel::sync::aref::ARef<_> = signalled.fence().into();
        signalled.signal(Ok(()));
        let mut late = counting_callback(&calls)?;
        assert_eq!(
            late.as_mut().add(&published)?,
            CallbackStatus::AlreadySignaled
        );
        assert_eq!(module_refs(), before);
        Ok(())
    }

    /// Callbacks registered and removed while another CPU signals their fences: every callback
    /// either runs exactly once or is removed before it runs.
    #[test]
    fn callbacks_race_the_signal() -> Result {
        const ROUNDS: u32 = 1000;
        let task = task()?;
        let timeline = FenceTimeline::new();
        let calls = counter()?;
        let mut removed = 0;
        for round in 0..ROUNDS {
            let fence = timeline.prepare(&task)?.arm();
            let published: kernel::sync::aref::ARef<_> = fence.fence().into();
            let signalled = Arc::pin_init(Completion::new(), GFP_KERNEL)?;
            let done = signalled.clone();
            crate::work::spawn(crate::work::system_dfl(), move || {
                fence.signal(Ok(()));
                done.complete_all();
            })?;
            let mut cb = counting_callback(&calls)?;
            let registered = cb.as_mut().add(&published)? == CallbackStatus::Registered;
            if round % 2 == 0 && registered && cb.as_mut().remove() {
                removed += 1;
            }
            signalled.wait_for_completion();
            if !registered {
                removed += 1;
            }
        }
        pr_info!(
            "callbacks_race_the_signal: {} ran, {removed} removed or too late\n",
            calls.load(Relaxed)
        );
        assert_eq!(calls.load(Relaxed) + removed, ROUNDS);
        Ok(())
    }

    /// Fences are added through the locker's `locked_mut`, which lends each lock without letting
    /// it leave the locker.
    #[test]
    fn locker_lends_locks_for_fences() -> Result {
        let task = task()?;
        let objs = new_resvs(3)?;
        let fence = FenceTimeline::new().prepare(&task)?.arm();
        {
            let flags = LockerFlags {
                fence_slots: 1,
                ..Default::default()
            };
            stack_pin_init!(let locker = ResvLocker::new(flags));
            locker
                .as_mut()
                .lock_iter(&task, objs.iter().map(|o| &***o))?;
            for mut held in locker.as_mut().locked_mut() {
                held.add_fence(fence.fence(), FenceUsage::Write)?;
                assert_eq!(held.fences(FenceUsage::Write).count(), 1);
            }
        }
        assert!(objs.iter().all(|o| !o.test_signaled(FenceUsage::Read)));
        fence.signal(Ok(()));
        assert!(objs.iter().all(|o| o.test_signaled(FenceUsage::Read)));
        Ok(())
    }

    /// The proof is made safely, and again on the same task: a second one is fine outside any
    /// section (`tests/lockdep/sound_may_block_refused_bad.rs` shows the refusals).
    #[test]
    fn may_block_is_checked_not_trusted() -> Result {
        let first = MayBlock::new()?;
        let second = MayBlock::new()?;
        let objs = new_resvs(1)?;
        drop(objs[0].lock(&first));
        drop(objs[0].lock(&second));
        Ok(())
    }
}
