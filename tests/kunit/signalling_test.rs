// SPDX-License-Identifier: GPL-2.0

//! KUnit suite `dmabuf_lock_signalling`: fence-signalling critical sections, and jobs that are
//! prepared before their fence is published and signal it from the driver's queue, and the names
//! a driver gives its fences (R3, R4, R5, R8).

use kernel::prelude::*;

#[kunit_tests(dmabuf_lock_signalling)]
mod tests {
    use crate::{
        common::{counter, task},
        dmabuf_lock::{
            fence::{Fence, FenceTimeline, MAX_FENCE_NAME},
            resv::{FenceUsage, OwnedResv},
            signalling::{might_wait_for_fence, SectionGfp, SignallingQueue},
        },
        DmabufLockTest,
    };
    use kernel::{
        bindings,
        prelude::*,
        sync::{aref::ARef, atomic::Relaxed, rcu},
    };

    /// This module's reference count.
    fn module_refs() -> i32 {
        let module = kernel::module::this_module::<DmabufLockTest>().as_ptr();
        // SAFETY: The module is live: its code is running.
        unsafe { bindings::module_refcount(module) }
    }

    /// The driver and timeline names `fence` reports, as the kernel's readers get them.
    fn names(fence: &Fence) -> (&'static [u8], &'static [u8]) {
        let _rcu = rcu::read_lock();
        // SAFETY: The fence is live; the names are read under the RCU read lock, as the
        // functions require.
        let (driver, timeline) = unsafe {
            (
                bindings::dma_fence_driver_name(fence.as_raw()),
                bindings::dma_fence_timeline_name(fence.as_raw()),
            )
        };
        (known(driver), known(timeline))
    }

    /// Maps a name to the constant it equals, so that none is used after the RCU section.
    fn known(name: *const kernel::ffi::c_char) -> &'static [u8] {
        // SAFETY: `name` is a NUL-terminated string that stays valid for the caller's RCU
        // section, which this borrow does not outlive.
        let name = unsafe { CStr::from_char_ptr(name) }.to_bytes();
        [
            &b"dl_kunit_gpu"[..],
            &b"dl_kunit_gpu-ring0"[..],
            &b"dmabuf_lock"[..],
            &b"dmabuf_lock-timeline"[..],
            &b"detached-driver"[..],
        ]
        .into_iter()
        .find(|k| *k == name)
        .unwrap_or(b"?")
    }

    #[test]
    fn section_nests() -> Result {
        let mut task = task()?;
        let timeline = FenceTimeline::new();
        let prepared = timeline.prepare(&task)?;
        let mut section = task.signalling_section();
        let fence = prepared.arm();
        let outer = section.alloc(fence.fence().seqno(), SectionGfp::Atomic)?;
        {
            let inner = section.nested();
            let copy = inner.alloc(*outer, SectionGfp::NoWait)?;
            assert_eq!(*copy, fence.fence().seqno());
        }
        fence.signal(Ok(()));
        drop(section);
        // The task context is usable again once the section has ended.
        let resv = KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?;
        drop(resv.lock(&task));
        Ok(())
    }

    /// The job pattern (R4, R8): prepare the job before any lock, lock, then in one section arm
    /// it, publish its fence and queue it; the job signals from its queue inside a section of
    /// its own, and the waiter sees the fence signalled.
    #[test]
    fn job_signals_from_its_queue() -> Result {
        let mut task = task()?;
        let resv = KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?;
        let timeline = FenceTimeline::new();
        let queue = SignallingQueue::new(c"dl_kunit_signal", &task)?;
        let job = queue.prepare(&task, &timeline, |fence, section| {
            if let Ok(stamp) = section.alloc(fence.fence().seqno(), SectionGfp::Atomic) {
                drop(stamp);
            }
            fence.signal(Ok(()));
        })?;
        let mut guard = resv.lock(&task);
        guard.reserve_fences(1)?;
        let section = task.signalling_section();
        let job = job.arm(&section);
        guard.add_fence(job.fence(), FenceUsage::Write)?;
        let fence: ARef<Fence> = job.fence().into();
        job.queue();
        drop(section);
        drop(guard);
        assert_eq!(resv.wait(&task, FenceUsage::Read, false, 5000), Ok(true));
        assert_eq!(fence.status(), Ok(true));
        Ok(())
    }

    /// Dropping the queue waits for the jobs queued on it, delayed ones included: when the drop
    /// returns, their functions have run, so no timer of a job is left to fire on a destroyed
    /// queue, and no job runs after the module's code is gone.
    #[test]
    fn queue_drop_waits_for_delayed_jobs() -> Result {
        let mut task = task()?;
        let timeline = FenceTimeline::new();
        let queue = SignallingQueue::new(c"dl_kunit_delayed", &task)?;
        let mut fences = KVec::with_capacity(3, GFP_KERNEL)?;
        for delay_ms in [0, 100, 300] {
            let job = queue.prepare(&task, &timeline, |fence, _| fence.signal(Ok(())))?;
            let section = task.signalling_section();
            let job = job.arm(&section);
            fences.push(ARef::<Fence>::from(job.fence()), GFP_ATOMIC)?;
            job.queue_after(delay_ms);
        }
        assert!(!fences[2].is_signaled());
        drop(queue);
        for fence in &fences {
            assert_eq!(fence.status(), Ok(true));
        }
        Ok(())
    }

    /// An armed job dropped instead of queued (an error after publishing) cancels its fence
    /// quietly, and its function never runs; a prepared job dropped unarmed publishes nothing.
    #[test]
    fn armed_job_dropped_cancels_its_fence() -> Result {
        let mut task = task()?;
        let timeline = FenceTimeline::new();
        let queue = SignallingQueue::new(c"dl_kunit_cancel", &task)?;
        let ran = counter()?;
        let r = ran.clone();
        let unarmed = queue.prepare(&task, &timeline, move |fence, _| {
            r.add(1, Relaxed);
            fence.signal(Ok(()));
        })?;
        drop(unarmed);
        let r = ran.clone();
        let job = queue.prepare(&task, &timeline, move |fence, _| {
            r.add(1, Relaxed);
            fence.signal(Ok(()));
        })?;
        let section = task.signalling_section();
        let job = job.arm(&section);
        let fence: ARef<Fence> = job.fence().into();
        drop(job);
        drop(section);
        assert_eq!(fence.status(), Err(ECANCELED));
        drop(queue);
        assert_eq!(ran.load(Relaxed), 0);
        // The unarmed job took the timeline's seqno 1 only if it armed a fence: it did not.
        assert_eq!(fence.seqno(), 1);
        Ok(())
    }

    /// A queued job holds a reference on this module (its function is this module's code) until
    /// it has run; prepared and cancelled jobs hold none once dropped.
    #[test]
    fn queued_job_pins_this_module() -> Result {
        let mut task = task()?;
        let timeline = FenceTimeline::new();
        let queue = SignallingQueue::new(c"dl_kunit_pin", &task)?;
        let before = module_refs();
        let job = queue.prepare(&task, &timeline, |fence, _| fence.signal(Ok(())))?;
        assert_eq!(module_refs(), before + 1);
        {
            let section = task.signalling_section();
            job.arm(&section).queue_after(200);
        }
        assert_eq!(module_refs(), before + 1);
        drop(queue);
        assert_eq!(module_refs(), before);
        Ok(())
    }

    /// A driver names its fences: the names are copied into each fence, so they outlive the
    /// timeline; unnamed timelines report the library's names; a name longer than
    /// `MAX_FENCE_NAME` is refused.
    #[test]
    fn fences_carry_their_driver_names() -> Result {
        let task = task()?;
        // The timeline is a temporary: it is gone once the fence is armed.
        let named = FenceTimeline::with_names(c"dl_kunit_gpu", c"dl_kunit_gpu-ring0")?
            .prepare(&task)?
            .arm();
        assert_eq!(
            names(named.fence()),
            (&b"dl_kunit_gpu"[..], &b"dl_kunit_gpu-ring0"[..])
        );
        let plain = FenceTimeline::new().prepare(&task)?.arm();
        assert_eq!(
            names(plain.fence()),
            (&b"dmabuf_lock"[..], &b"dmabuf_lock-timeline"[..])
        );
        plain.signal(Ok(()));
        let signalled: ARef<Fence> = named.fence().into();
        named.signal(Ok(()));
        // A signalled fence is detached from its ops and reports no names of its driver.
        assert_eq!(names(&signalled).0, &b"detached-driver"[..]);
        let longest = c"0123456789012345678901234567890";
        assert_eq!(longest.to_bytes().len(), MAX_FENCE_NAME);
        assert!(FenceTimeline::with_names(longest, longest).is_ok());
        let too_long = c"01234567890123456789012345678901";
        assert!(matches!(
            FenceTimeline::with_names(c"ok", too_long),
            Err(e) if e == EINVAL
        ));
        assert!(matches!(
            FenceTimeline::with_names(too_long, c"ok"),
            Err(e) if e == EINVAL
        ));
        Ok(())
    }

    /// Annotating a path as "may wait for a fence" outside any section is silent; lockdep
    /// would report it inside one that holds a lock the signaller needs.
    #[test]
    fn might_wait_outside_sections() -> Result {
        let task = task()?;
        might_wait_for_fence(&task);
        Ok(())
    }
}
