// SPDX-License-Identifier: GPL-2.0

//! KUnit suite `dmabuf_lock_irq`: fences signalled from a completion interrupt (an hrtimer),
//! jobs timed out by their watchdog, and a driver's hardware-seqno hooks (R4, R8).

use kernel::prelude::*;

#[kunit_tests(dmabuf_lock_irq)]
mod tests {
    use crate::{
        common::task,
        dmabuf_lock::{
            fence::{Fence, FenceHardware, FenceTimeline},
            signalling::{HwCompletion, IrqSection, PreparedIrqJob},
        },
        DmabufLockTest,
    };
    use kernel::{
        bindings,
        prelude::*,
        sync::{
            aref::ARef,
            atomic::{Acquire, Atomic, Relaxed, Release},
        },
        time::{delay::fsleep, Delta},
    };

    extern "C" {
        /// `in_atomic() || irqs_disabled()`, exported by `dmabuf_lock.ko`.
        fn dl_in_atomic_context() -> bool;
    }

    /// This module's reference count.
    fn module_refs() -> i32 {
        let module = kernel::module::this_module::<DmabufLockTest>().as_ptr();
        // SAFETY: The module is live: its code is running.
        unsafe { bindings::module_refcount(module) }
    }

    /// Waits up to a second for this module's reference count to come back to `refs`: a job
    /// gives its reference up just after its handler signals.
    fn refs_settle(refs: i32) -> bool {
        for _ in 0..1000 {
            if module_refs() == refs {
                return true;
            }
            fsleep(Delta::from_millis(1));
        }
        false
    }

    /// Runs of `on_irq`, and how many of them were in atomic context.
    static IRQS: Atomic<u32> = Atomic::new(0);
    static IRQS_ATOMIC: Atomic<u32> = Atomic::new(0);

    /// The completion interrupt's handler of these tests.
    fn on_irq(_fence: &Fence, _irq: &mut IrqSection) -> Result {
        IRQS.add(1, Relaxed);
        // SAFETY: Reads the current context only.
        if unsafe { dl_in_atomic_context() } {
            IRQS_ATOMIC.add(1, Relaxed);
        }
        Ok(())
    }

    /// Polls `fence` (no `MayBlock` needed, so inside a section too) for up to five seconds.
    fn signals_soon(fence: &Fence) -> bool {
        for _ in 0..5000 {
            if fence.is_signaled() {
                return true;
            }
            fsleep(Delta::from_millis(1));
        }
        false
    }

    /// Arms and submits a job of `timeline` in a section of its own; returns its fence.
    fn submit(
        timeline: &FenceTimeline,
        timeout_ms: u32,
        completion: HwCompletion,
    ) -> Result<ARef<Fence>> {
        let mut task = task()?;
        let job = PreparedIrqJob::new(&task, timeline, timeout_ms, on_irq)?;
        let section = task.signalling_section();
        let job = job.arm(&section);
        let fence = job.fence().into();
        job.submit(completion);
        drop(section);
        Ok(fence)
    }

    /// The hrtimer's callback signals the fence, in atomic context; the watchdog is stopped and
    /// the job's module reference given up at once, not when the timeout would have expired.
    #[test]
    fn interrupt_signals_the_fence() -> Result {
        let task = task()?;
        let timeline = FenceTimeline::new();
        let (runs, atomic, refs) = (IRQS.load(Relaxed), IRQS_ATOMIC.load(Relaxed), module_refs());
        let fence = submit(&timeline, 10_000, HwCompletion::After(5))?;
        assert_eq!(fence.wait(&task, false, 5000), Ok(true));
        assert_eq!(fence.status(), Ok(true));
        assert_eq!(IRQS.load(Relaxed), runs + 1);
        assert_eq!(IRQS_ATOMIC.load(Relaxed), atomic + 1);
        assert!(refs_settle(refs));
        Ok(())
    }

    /// Hardware that never completes: the watchdog signals `-ETIMEDOUT` after the timeout, and
    /// the handler never runs.
    #[test]
    fn hung_job_times_out() -> Result {
        let task = task()?;
        let timeline = FenceTimeline::new();
        let (runs, refs) = (IRQS.load(Relaxed), module_refs());
        let fence = submit(&timeline, 30, HwCompletion::Never)?;
        assert_eq!(fence.status(), Ok(false));
        assert_eq!(fence.wait(&task, false, 5000), Ok(true));
        assert_eq!(fence.status(), Err(ETIMEDOUT));
        assert_eq!(IRQS.load(Relaxed), runs);
        assert!(refs_settle(refs));
        Ok(())
    }

    /// An armed job whose handle is never submitted nor dropped (as if forgotten) still
    /// signals (R8): the watchdog is not the handle's. The handle is kept in a `ManuallyDrop`
    /// rather than forgotten, and released once the fence has timed out, so that the case does
    /// not pin this module for good.
    #[test]
    fn unsubmitted_job_times_out() -> Result {
        let mut task = task()?;
        let timeline = FenceTimeline::new();
        let refs = module_refs();
        let job = PreparedIrqJob::new(&task, &timeline, 20, on_irq)?;
        let section = task.signalling_section();
        let job = core::mem::ManuallyDrop::new(job.arm(&section));
        let fence: ARef<Fence> = job.fence().into();
        assert!(signals_soon(&fence));
        assert_eq!(fence.status(), Err(ETIMEDOUT));
        // Only the handle's reference is left: the job, and so this module, are still held.
        assert_eq!(module_refs(), refs + 1);
        drop(core::mem::ManuallyDrop::into_inner(job));
        drop(section);
        assert_eq!(fence.status(), Err(ETIMEDOUT));
        assert_eq!(module_refs(), refs);
        Ok(())
    }

    /// A job submitted after its watchdog fired starts no completion timer: its fence has
    /// signalled, and the timer would only have held the job and this module for its delay.
    /// (Before the fix the timer ran, and the module reference came back after 5 s.)
    #[test]
    fn late_submit_starts_no_timer() -> Result {
        let mut task = task()?;
        let timeline = FenceTimeline::new();
        let (runs, refs) = (IRQS.load(Relaxed), module_refs());
        let job = PreparedIrqJob::new(&task, &timeline, 10, on_irq)?;
        let section = task.signalling_section();
        let job = job.arm(&section);
        let fence: ARef<Fence> = job.fence().into();
        assert!(signals_soon(&fence));
        job.submit(HwCompletion::After(5000));
        drop(section);
        assert_eq!(fence.status(), Err(ETIMEDOUT));
        assert!(refs_settle(refs));
        assert_eq!(IRQS.load(Relaxed), runs);
        Ok(())
    }

    /// An armed job dropped unsubmitted cancels its fence and stops its watchdog there and
    /// then: the module reference is back before the drop returns.
    #[test]
    fn dropped_job_cancels_and_stops_its_watchdog() -> Result {
        let mut task = task()?;
        let timeline = FenceTimeline::new();
        let (runs, refs) = (IRQS.load(Relaxed), module_refs());
        let job = PreparedIrqJob::new(&task, &timeline, 10_000, on_irq)?;
        let section = task.signalling_section();
        let job = job.arm(&section);
        let fence: ARef<Fence> = job.fence().into();
        drop(job);
        drop(section);
        assert_eq!(fence.status(), Err(ECANCELED));
        assert_eq!(module_refs(), refs);
        assert_eq!(IRQS.load(Relaxed), runs);
        Ok(())
    }

    /// The interrupt and the watchdog due at the same time, on many jobs: each fence signals
    /// once, from one of them, and every job is freed.
    #[test]
    fn interrupt_races_the_watchdog() -> Result {
        const JOBS: u32 = 500;
        let task = task()?;
        let timeline = FenceTimeline::new();
        let (runs, refs) = (IRQS.load(Relaxed), module_refs());
        let mut fences = KVec::with_capacity(JOBS as usize, GFP_KERNEL)?;
        for i in 0..JOBS {
            fences.push(
                submit(&timeline, 1 + i % 2, HwCompletion::After(1))?,
                GFP_KERNEL,
            )?;
        }
        let (mut completed, mut timed_out) = (0, 0);
        for fence in &fences {
            assert_eq!(fence.wait(&task, false, 5000), Ok(true));
            match fence.status() {
                Ok(true) => completed += 1,
                Err(e) if e == ETIMEDOUT => timed_out += 1,
                _ => {}
            }
        }
        pr_info!("interrupt_races_the_watchdog: {completed} completed, {timed_out} timed out\n");
        assert_eq!(completed + timed_out, JOBS);
        assert_eq!(IRQS.load(Relaxed), runs + completed);
        assert!(refs_settle(refs));
        Ok(())
    }

    /// A ring whose engine finishes jobs in order and writes the last one's seqno.
    struct Ring {
        completed: Atomic<u64>,
        irq_enabled: Atomic<u32>,
    }

    impl FenceHardware for Ring {
        fn signaled(&self, seqno: u64) -> bool {
            // Acquire: pairs with the engine's Release store, so the job's results written
            // before the seqno are seen by whoever learns from this that the job is done.
            self.completed.load(Acquire) >= seqno
        }

        fn enable_signaling(&self, seqno: u64) -> bool {
            self.irq_enabled.add(1, Relaxed);
            !self.signaled(seqno)
        }
    }

    /// The hooks run on the fence's ops: `signaled` signals the fence before the driver does,
    /// whose late signal then changes nothing (not even the error) and warns of nothing;
    /// `enable_signaling` runs once per fence, and a job found done there signals at once. An
    /// unsignalled fence pins this module, where its ops are.
    #[test]
    fn hardware_hooks_signal_early() -> Result {
        static RING: Ring = Ring {
            completed: Atomic::new(0),
            irq_enabled: Atomic::new(0),
        };
        let task = task()?;
        let timeline = FenceTimeline::with_hardware(c"dl_kunit_gpu", c"dl_kunit_gpu-ring0", &RING)?;
        let refs = module_refs();
        let first = timeline.prepare(&task)?.arm();
        let second = timeline.prepare(&task)?.arm();
        assert_eq!(module_refs(), refs + 2);
        first.fence().enable_signaling();
        first.fence().enable_signaling();
        assert_eq!(RING.irq_enabled.load(Relaxed), 1);
        assert!(!first.fence().is_signaled());
        RING.completed.store(first.fence().seqno(), Release);
        assert!(first.fence().is_signaled());
        assert!(!second.fence().is_signaled());
        let published: ARef<Fence> = first.fence().into();
        first.signal(Err(EIO));
        assert_eq!(published.status(), Ok(true));
        RING.completed.store(second.fence().seqno(), Release);
        second.fence().enable_signaling();
        assert_eq!(RING.irq_enabled.load(Relaxed), 2);
        assert_eq!(second.fence().status(), Ok(true));
        drop(second); // signalled by the hardware: no R8 warning
        assert_eq!(module_refs(), refs);
        Ok(())
    }

    /// Hardware whose hook records this module's reference count while it runs.
    struct Counting {
        refs_in_hook: Atomic<i32>,
    }

    impl FenceHardware for Counting {
        fn signaled(&self, _seqno: u64) -> bool {
            self.refs_in_hook.store(module_refs(), Relaxed);
            false
        }
    }

    /// A hook runs with a module reference of its own, besides the one its unsignalled fence
    /// holds: a hook that slept would leave the RCU read-side critical section its caller
    /// fetched the ops in, and only that reference keeps the module's code from being freed.
    /// (Before the fix the hook ran with the fence's reference only.)
    #[test]
    fn hook_holds_its_module() -> Result {
        static HW: Counting = Counting {
            refs_in_hook: Atomic::new(0),
        };
        let task = task()?;
        let timeline = FenceTimeline::with_hardware(c"dl_kunit_gpu", c"dl_kunit_gpu-ring2", &HW)?;
        let refs = module_refs();
        let job = timeline.prepare(&task)?.arm();
        assert!(!job.fence().is_signaled());
        assert_eq!(HW.refs_in_hook.load(Relaxed), refs + 2);
        assert_eq!(module_refs(), refs + 1);
        job.signal(Ok(()));
        assert_eq!(module_refs(), refs);
        Ok(())
    }

    /// A job the hardware has finished, but whose fence nobody has asked about yet, signalled
    /// with an error (a watchdog that fired late, a cancellation): the hardware wins, the fence
    /// signals without the error. (Before the fix the signal only tested the signalled flag and
    /// set the error.)
    #[test]
    fn hardware_done_wins_over_a_late_error() -> Result {
        static RING: Ring = Ring {
            completed: Atomic::new(0),
            irq_enabled: Atomic::new(0),
        };
        let task = task()?;
        let timeline = FenceTimeline::with_hardware(c"dl_kunit_gpu", c"dl_kunit_gpu-ring1", &RING)?;
        let job = timeline.prepare(&task)?.arm();
        let published: ARef<Fence> = job.fence().into();
        RING.completed.store(job.fence().seqno(), Release);
        job.signal(Err(ETIMEDOUT));
        assert_eq!(published.status(), Ok(true));
        Ok(())
    }
}
