// SPDX-License-Identifier: GPL-2.0

//! Fences signalled from the completion interrupt, and a watchdog that times out a job whose
//! hardware never completes (R4, R5, R8).
//!
//! A GPU signals most fences from its completion interrupt. Here an `hrtimer` stands in for
//! that interrupt: [`PreparedIrqJob`] holds a job's fence, its "hardware" timer and its
//! watchdog timer, all allocated before the fence is published (R4), like
//! [`super::SignallingQueue::prepare`] does for work items. The submission tail arms it in the
//! section ([`PreparedIrqJob::arm`], which starts the watchdog) and submits it
//! ([`ArmedIrqJob::submit`], which starts the hardware); neither allocates.
//!
//! The interrupt handler (the driver's closure) runs in hard interrupt context with an
//! [`IrqSection`], the signalling section of atomic context. It reads the job's outcome from the
//! hardware and returns it; the library signals the fence with it. The handler never holds the
//! [`DriverFence`]: it cannot keep, forget or drop the fence unsignalled, so it cannot stop the
//! fence from signalling in bounded time. `dma_fence_begin_signalling()`
//! returns at once in atomic context, so lockdep does not see the handler as a signalling
//! section; it does not need to: in atomic context the kernel reports every sleeping call
//! (`might_sleep()`, "sleeping function called from invalid context"), `GFP_KERNEL` included,
//! and lockdep checks that each lock the handler takes is interrupt-safe everywhere. What the
//! types add: the handler gets no [`MayBlock`](super::MayBlock) (it is `!Send`, the handler must
//! be `Send`), so no blocking call of this library compiles in it; [`IrqSection`] offers no
//! operation of the library, allocation included (the kernel's allocator stays reachable:
//! lockdep and `might_sleep()` report a `GFP_KERNEL` allocation there); and the handler is
//! `Copy`, so what it owns has no destructor that could sleep when the job is freed in the
//! interrupt.
//!
//! Bounded time (R8): the watchdog starts when the job is armed, before the fence is
//! published, and is not a handle the driver keeps: a job that is never submitted, submitted to
//! hardware that hangs, or whose [`ArmedIrqJob`] is forgotten, has its fence signalled with
//! `-ETIMEDOUT` when the timeout expires. Whichever of the interrupt, the watchdog and a
//! cancellation comes first signals the fence, once, and cancels the other timer. The
//! interrupt's handler cannot keep the watchdog from firing: the watchdog is cancelled only
//! after the library has signalled the fence with what the handler returned.
//!
//! What the watchdog does not do: stop the engine. It signals the fence and cancels the
//! completion timer, which is all the simulated engine of the samples is. A real engine that
//! hangs may still be running the job, and may write to its buffers after the fence said they
//! are free; a driver must stop or reset it (a reset sleeps: a [`super::SignallingQueue`] job
//! prepared with the submission) before it reuses anything the job used. This watchdog bounds
//! the time a waiter waits (R8); it is not a GPU scheduler's timeout handling.
//!
//! Module unload: every job holds a reference on the module whose code its timers run, from
//! [`PreparedIrqJob::new`] until its last timer has fired or been cancelled, so the module
//! cannot go while a timer is armed, whatever handles are forgotten (a forgotten one keeps it
//! loaded).
//!
//! # Examples
//!
//! ```
//! use dmabuf_lock::{
//!     context::MayBlock,
//!     fence::{Fence, FenceTimeline},
//!     resv::{FenceUsage, OwnedResv},
//!     signalling::{HwCompletion, PreparedIrqJob},
//! };
//! use kernel::sync::aref::ARef;
//!
//! # let mut task = MayBlock::new()?;
//! # let resv = KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?;
//! # let timeline = FenceTimeline::new();
//! // Before any lock: fence, timers, all of it (GFP_KERNEL). The watchdog's timeout is 1 s.
//! let job = PreparedIrqJob::new(&task, &timeline, 1000, |_fence, _irq| Ok(()))?;
//! let mut guard = resv.lock(&task);
//! guard.reserve_fences(1)?;
//! let section = task.signalling_section();
//! let job = job.arm(&section); // the watchdog runs from here on
//! guard.add_fence(job.fence(), FenceUsage::Write)?;
//! let published: ARef<Fence> = job.fence().into();
//! job.submit(HwCompletion::After(10)); // the "hardware" interrupts in 10 ms
//! drop(section);
//! drop(guard);
//! assert_eq!(published.wait(&task, false, 5000), Ok(true));
//! assert_eq!(published.status(), Ok(true)); // signalled by the interrupt, not the watchdog
//! # Ok::<(), Error>(())
//! ```

use super::{
    super::fence::{DriverFence, Fence, FenceTimeline, ModuleRef, PreparedFence},
    MayBlock, SectionCtx,
};
use core::{cell::UnsafeCell, marker::PhantomData, ptr::NonNull};
use kernel::{
    bindings,
    prelude::*,
    sync::{
        aref::ARef,
        atomic::{Atomic, Full, Relaxed},
        barrier::smp_mb,
    },
    time::{Delta, Msecs},
    types::{NotThreadSafe, Opaque},
};

/// The signalling section of a completion interrupt: what the handler of a [`PreparedIrqJob`]
/// may do while it signals its fence.
///
/// It offers nothing, on purpose: in interrupt context the handler reads the hardware, takes
/// spinlocks that are interrupt-safe and uses atomics, and returns the job's outcome, with which
/// the library signals the fence. The handler sees the fence as a `&Fence` only, which cannot
/// signal it (`compile-fail/irq_handler_cannot_signal.rs`). No allocation is offered, not even
/// `GFP_ATOMIC` (a completion must not fail), and no [`MayBlock`], so no reservation lock or
/// fence wait (`compile-fail/may_block_moved_into_irq_handler.rs`). It is `!Send`: it is valid
/// for the one interrupt that made it.
///
/// # Examples
///
/// ```
/// use dmabuf_lock::{context::MayBlock, fence::{Fence, FenceTimeline}, signalling::{HwCompletion, IrqSection, PreparedIrqJob}};
///
/// /// The driver's completion handler: the engine reported the job done without error.
/// fn job_done(_fence: &Fence, _irq: &mut IrqSection) -> Result {
///     Ok(())
/// }
///
/// # let mut task = MayBlock::new()?;
/// # let timeline = FenceTimeline::new();
/// let job = PreparedIrqJob::new(&task, &timeline, 1000, job_done)?;
/// # let section = task.signalling_section();
/// # let job = job.arm(&section);
/// # let fence: kernel::sync::aref::ARef<dmabuf_lock::fence::Fence> = job.fence().into();
/// # job.submit(HwCompletion::After(0));
/// # drop(section);
/// # assert_eq!(fence.wait(&task, false, 5000), Ok(true));
/// # Ok::<(), Error>(())
/// ```
pub struct IrqSection {
    _not_send: NotThreadSafe,
}

/// When the "hardware" of an [`ArmedIrqJob`] raises its completion interrupt.
///
/// ```
/// use dmabuf_lock::signalling::HwCompletion;
///
/// /// What a job's ioctl asked of the simulated engine.
/// fn engine(delay_ms: u32, hang: bool) -> HwCompletion {
///     if hang {
///         HwCompletion::Never
///     } else {
///         HwCompletion::After(delay_ms)
///     }
/// }
/// assert_eq!(engine(5, false), HwCompletion::After(5));
/// assert_eq!(engine(5, true), HwCompletion::Never);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HwCompletion {
    /// After this many milliseconds.
    After(Msecs),
    /// Never: the hardware hangs, and the watchdog times the job out (R8).
    Never,
}

/// A job's fence, its completion timer and its watchdog, allocated ahead of the submission tail
/// (R4). Dropping it frees them: nothing was published.
///
/// `on_irq` is the completion interrupt's handler: it gets the fence to read (its seqno) and
/// returns the job's outcome, with which the library signals the fence (R8). It is `Copy`, so it
/// owns nothing that needs dropping in interrupt context.
///
/// # Examples
///
/// ```
/// # use dmabuf_lock::{context::MayBlock, fence::FenceTimeline, signalling::PreparedIrqJob};
/// # let task = MayBlock::new()?;
/// # let timeline = FenceTimeline::new();
/// let job = PreparedIrqJob::new(&task, &timeline, 1000, |_fence, _irq| Ok(()))?;
/// drop(job); // not armed: no fence was published, no timer started
/// # Ok::<(), Error>(())
/// ```
#[must_use = "dropping it frees the job; arm it inside the submission tail's section"]
pub struct PreparedIrqJob<'t, F: IrqHandler> {
    fence: PreparedFence<'t>,
    job: Pin<KBox<IrqJob<F>>>,
}

/// A completion interrupt's handler: [`PreparedIrqJob`]'s `on_irq`. Every closure or function
/// of the right signature that is `Copy`, `Send` and `'static` is one. It returns the job's
/// outcome; the library signals the fence with it.
///
/// It runs in hard interrupt context, before the fence is signalled: it must not sleep, and must
/// not wait for the job's fence, which only its return signals (it gets no
/// [`MayBlock`](super::MayBlock), so no wait of this library compiles in it).
///
/// ```
/// use dmabuf_lock::{fence::Fence, signalling::{IrqHandler, IrqSection}};
///
/// fn handler() -> impl IrqHandler {
///     |_fence: &Fence, _irq: &mut IrqSection| Ok(())
/// }
/// let on_irq = handler();
/// let copy = on_irq; // `Copy`: it owns nothing that needs dropping in the interrupt
/// # let _ = (on_irq, copy);
/// ```
pub trait IrqHandler: FnOnce(&Fence, &mut IrqSection) -> Result + Copy + Send + 'static {}

impl<F: FnOnce(&Fence, &mut IrqSection) -> Result + Copy + Send + 'static> IrqHandler for F {}

impl<'t, F: IrqHandler> PreparedIrqJob<'t, F> {
    /// Allocates a job that will signal a fence of `timeline` from its completion interrupt, or
    /// with `-ETIMEDOUT` if that has not come `timeout_ms` after the job is armed
    /// (`GFP_KERNEL`, hence the [`MayBlock`]). Fails with `ENOMEM`; `EBUSY` while this module's
    /// `init` runs and `ENODEV` while it is being unloaded: the job's timers run this module's
    /// code, and it takes a reference on the module only once it is live (a module whose `init`
    /// fails is freed whatever its references).
    ///
    /// ```
    /// # use dmabuf_lock::{context::MayBlock, fence::{Fence, FenceTimeline}, signalling::{HwCompletion, PreparedIrqJob}};
    /// # use kernel::sync::aref::ARef;
    /// # let mut task = MayBlock::new()?;
    /// # let timeline = FenceTimeline::new();
    /// // The engine reports a fault: the interrupt signals the fence with an error.
    /// let job = PreparedIrqJob::new(&task, &timeline, 1000, |_fence, _irq| Err(EIO))?;
    /// # let section = task.signalling_section();
    /// # let job = job.arm(&section);
    /// # let fence: ARef<Fence> = job.fence().into();
    /// # job.submit(HwCompletion::After(1));
    /// # drop(section);
    /// # assert_eq!(fence.wait(&task, false, 5000), Ok(true));
    /// assert_eq!(fence.status(), Err(EIO));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn new(
        task: &MayBlock,
        timeline: &'t FenceTimeline,
        timeout_ms: Msecs,
        on_irq: F,
    ) -> Result<Self> {
        let fence = timeline.prepare(task)?;
        let module = ModuleRef::this_module()?;
        let job = KBox::pin_init(
            pin_init!(IrqJob {
                completion <- IrqJob::<F>::timer(IrqJob::<F>::completion_fired),
                watchdog <- IrqJob::<F>::timer(IrqJob::<F>::watchdog_fired),
                taken: Atomic::new(false),
                refs: Atomic::new(0),
                fence: UnsafeCell::new(None),
                on_irq,
                timeout: Delta::from_millis(i64::from(timeout_ms)),
                _module: module,
            }),
            GFP_KERNEL,
        )?;
        Ok(Self { fence, job })
    }

    /// Arms the job's fence, to be published now, and starts its watchdog: from here on the
    /// fence signals within the timeout, whatever happens to the returned job. It takes the
    /// `section` of the submission tail and the armed job borrows it (R4, R5). Allocates
    /// nothing and cannot fail.
    ///
    /// ```
    /// # use dmabuf_lock::{context::MayBlock, fence::{Fence, FenceTimeline}, signalling::{HwCompletion, PreparedIrqJob}};
    /// # use kernel::sync::aref::ARef;
    /// # let mut task = MayBlock::new()?;
    /// # let timeline = FenceTimeline::new();
    /// # let prepared = PreparedIrqJob::new(&task, &timeline, 1000, |_fence, _irq| Ok(()))?;
    /// let section = task.signalling_section();
    /// let job = prepared.arm(&section); // allocates nothing; the watchdog runs
    /// assert!(!job.fence().is_signaled());
    /// # let fence: ARef<Fence> = job.fence().into();
    /// # job.submit(HwCompletion::After(0));
    /// # drop(section);
    /// # assert_eq!(fence.wait(&task, false, 5000), Ok(true));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn arm<'s>(self, _section: &'s SectionCtx) -> ArmedIrqJob<'s, F> {
        let Self { fence, job } = self;
        let fence = fence.arm();
        let published = ARef::from(fence.fence());
        // SAFETY: No timer of the job has started, so nothing else reaches `fence`.
        unsafe { *job.fence.get() = Some(fence) };
        // INVARIANT: Two references from here on: the handle's, and the watchdog's, started
        // below; the box is reached through the raw pointer only.
        job.refs.store(2, Relaxed);
        // SAFETY: The job is not moved out of the allocation: it is freed in place by `put`.
        let job = NonNull::from(KBox::leak(unsafe { Pin::into_inner_unchecked(job) }));
        // SAFETY: The job is alive: the handle's reference, kept.
        let (watchdog, timeout) = unsafe { (IrqJob::watchdog(job), job.as_ref().timeout) };
        // SAFETY: The watchdog was set up in `new` and not started; one reference is its own.
        unsafe { start(watchdog, timeout) };
        ArmedIrqJob {
            fence: published,
            job: Some(job),
            _section: PhantomData,
        }
    }
}

/// A job whose fence is armed and whose watchdog runs, inside the submission tail's section,
/// which it borrows.
///
/// Submit it with [`ArmedIrqJob::submit`]. Dropped instead (an error after publishing), it
/// signals its fence with `-ECANCELED` and stops its watchdog. Forgotten, the watchdog signals
/// the fence with `-ETIMEDOUT` (R8), and the job's memory and module reference are leaked.
///
/// # Invariants
///
/// While `job` is set, it is a live job on which this value holds a reference.
///
/// # Examples
///
/// ```
/// # use dmabuf_lock::{context::MayBlock, fence::{Fence, FenceTimeline}, signalling::PreparedIrqJob};
/// # use kernel::sync::aref::ARef;
/// # let mut task = MayBlock::new()?;
/// # let timeline = FenceTimeline::new();
/// # let prepared = PreparedIrqJob::new(&task, &timeline, 1000, |_fence, _irq| Ok(()))?;
/// # let section = task.signalling_section();
/// let job = prepared.arm(&section);
/// let fence: ARef<Fence> = job.fence().into();
/// drop(job); // an error later in the submission: cancelled, the watchdog stopped
/// assert_eq!(fence.status(), Err(ECANCELED));
/// # Ok::<(), Error>(())
/// ```
#[must_use = "submit it; dropping it cancels its fence"]
pub struct ArmedIrqJob<'s, F: IrqHandler> {
    fence: ARef<Fence>,
    job: Option<NonNull<IrqJob<F>>>,
    _section: PhantomData<&'s SectionCtx>,
}

impl<F: IrqHandler> ArmedIrqJob<'_, F> {
    /// Returns the job's fence, to publish it.
    ///
    /// ```
    /// # use dmabuf_lock::{context::MayBlock, fence::FenceTimeline, resv::{FenceUsage, OwnedResv}, signalling::{HwCompletion, PreparedIrqJob}};
    /// # let mut task = MayBlock::new()?;
    /// # let resv = KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?;
    /// # let timeline = FenceTimeline::new();
    /// # let prepared = PreparedIrqJob::new(&task, &timeline, 1000, |_fence, _irq| Ok(()))?;
    /// # let mut guard = resv.lock(&task);
    /// # guard.reserve_fences(1)?;
    /// # let section = task.signalling_section();
    /// # let job = prepared.arm(&section);
    /// guard.add_fence(job.fence(), FenceUsage::Write)?;
    /// # job.submit(HwCompletion::After(0));
    /// # drop(section);
    /// # drop(guard);
    /// # assert_eq!(resv.wait(&task, FenceUsage::Write, false, 5000), Ok(true));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn fence(&self) -> &Fence {
        &self.fence
    }

    /// Hands the job to the "hardware": its completion interrupt comes as `completion` says
    /// (never: the watchdog times it out). Allocates nothing. A job whose watchdog has fired
    /// already is not handed over: its fence is signalled, and a completion timer would only
    /// keep the job and the module for as long as its delay.
    ///
    /// ```
    /// # use dmabuf_lock::{context::MayBlock, fence::{Fence, FenceTimeline}, signalling::{HwCompletion, PreparedIrqJob}};
    /// # use kernel::sync::aref::ARef;
    /// # let mut task = MayBlock::new()?;
    /// # let timeline = FenceTimeline::new();
    /// # let prepared = PreparedIrqJob::new(&task, &timeline, 30, |_fence, _irq| Ok(()))?;
    /// # let section = task.signalling_section();
    /// # let job = prepared.arm(&section);
    /// # let fence: ARef<Fence> = job.fence().into();
    /// job.submit(HwCompletion::Never); // the hardware hangs
    /// # drop(section);
    /// assert_eq!(fence.wait(&task, false, 5000), Ok(true)); // 30 ms later
    /// assert_eq!(fence.status(), Err(ETIMEDOUT));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn submit(mut self, completion: HwCompletion) {
        let Some(job) = self.job.take() else {
            return;
        };
        if let HwCompletion::After(ms) = completion {
            // SAFETY: `job` is live: this value holds a reference (type invariant).
            let (armed, timer) = unsafe { (job.as_ref(), IrqJob::completion(job)) };
            // INVARIANT: A reference for the completion timer, started below; the handle keeps
            // its own until the end.
            armed.refs.fetch_add(1, Relaxed);
            // SAFETY: The completion timer was set up in `new` and never started; it owns the
            // reference just taken.
            unsafe { start(timer, Delta::from_millis(i64::from(ms))) };
            // The watchdog may have taken the fence before the timer was queued, and found
            // nothing to cancel. The barrier pairs with its exchange of `taken` (`Full`) before
            // it cancels the completion timer: either it sees the timer queued and cancels it,
            // or this sees `taken` and does.
            smp_mb(Full);
            if armed.taken.load(Relaxed) {
                armed.cancel(&armed.completion);
            }
        }
        // SAFETY: The handle's reference, given up; each started timer holds its own.
        unsafe { IrqJob::put(job.as_ptr()) };
    }
}

impl<F: IrqHandler> Drop for ArmedIrqJob<'_, F> {
    fn drop(&mut self) {
        let Some(job) = self.job.take() else {
            return;
        };
        // SAFETY: `job` is live: this value holds a reference (type invariant).
        let armed = unsafe { job.as_ref() };
        // Not submitted: cancel the fence, unless the watchdog was first.
        if let Some(fence) = armed.take_fence() {
            fence.cancel();
            armed.cancel(&armed.watchdog);
        }
        // SAFETY: This value's reference, given up.
        unsafe { IrqJob::put(job.as_ptr()) };
    }
}

/// The memory of a job: its timers, its fence until one of them (or a cancellation) takes it,
/// and the handler.
///
/// # Invariants
///
/// Once armed, the job is reached through a raw pointer from `KBox::leak` and freed by the
/// `put` that drops `refs` to zero. `refs` counts the references held: the handle's
/// ([`ArmedIrqJob`], until it is submitted or dropped) and one for each started timer, held
/// until its callback has given it up or a cancellation dequeued the timer; a timer is started
/// at most once. `fence` is set when the job is armed and taken only by whoever sets `taken`
/// first.
#[pin_data]
struct IrqJob<F: IrqHandler> {
    #[pin]
    completion: Opaque<bindings::hrtimer>,
    #[pin]
    watchdog: Opaque<bindings::hrtimer>,
    taken: Atomic<bool>,
    refs: Atomic<u32>,
    fence: UnsafeCell<Option<DriverFence>>,
    on_irq: F,
    timeout: Delta,
    /// This module's code runs the timers: dropped last.
    _module: ModuleRef,
}

impl<F: IrqHandler> IrqJob<F> {
    /// Initialises one of the job's timers (`CLOCK_MONOTONIC`, relative; its callback runs in
    /// hard interrupt context, or, on `PREEMPT_RT`, in the softirq thread, with interrupts on).
    fn timer(
        callback: unsafe extern "C" fn(*mut bindings::hrtimer) -> bindings::hrtimer_restart,
    ) -> impl PinInit<Opaque<bindings::hrtimer>> {
        Opaque::ffi_init(move |slot: *mut bindings::hrtimer| {
            // SAFETY: `slot` is the timer's pinned memory, which `hrtimer_setup` initialises.
            unsafe {
                bindings::hrtimer_setup(
                    slot,
                    Some(callback),
                    bindings::CLOCK_MONOTONIC as bindings::clockid_t,
                    bindings::hrtimer_mode_HRTIMER_MODE_REL,
                )
            }
        })
    }

    /// The job's completion timer, as a pointer that keeps the provenance of the whole job,
    /// which the timer's callback reaches back to.
    ///
    /// # Safety
    ///
    /// `job` is live.
    unsafe fn completion(job: NonNull<Self>) -> *mut bindings::hrtimer {
        // SAFETY: The caller guarantees `job`; a raw projection creates no reference.
        Opaque::cast_into(unsafe { &raw const (*job.as_ptr()).completion })
    }

    /// The job's watchdog timer, as [`Self::completion`] gives its completion timer.
    ///
    /// # Safety
    ///
    /// `job` is live.
    unsafe fn watchdog(job: NonNull<Self>) -> *mut bindings::hrtimer {
        // SAFETY: As in `completion`.
        Opaque::cast_into(unsafe { &raw const (*job.as_ptr()).watchdog })
    }

    /// Takes the fence if nothing took it before: only the first caller gets it.
    fn take_fence(&self) -> Option<DriverFence> {
        if self.taken.xchg(true, Full) {
            return None;
        }
        // SAFETY: `fence` was written when the job was armed, before any timer started (which
        // orders the write before the timers' callbacks), and only the one caller that set
        // `taken` reaches it afterwards.
        unsafe { (*self.fence.get()).take() }
    }

    /// Cancels `timer` if it is queued; its reference goes with it, since its callback will not
    /// run. A running callback is not waited for: it gives up its own reference.
    fn cancel(&self, timer: &Opaque<bindings::hrtimer>) {
        // SAFETY: The timer was set up in `new`; cancelling one that is not queued does nothing.
        if unsafe { bindings::hrtimer_try_to_cancel(timer.get()) } == 1 {
            // The caller holds a reference of its own, so this one is not the last.
            self.refs.fetch_sub(1, Full);
        }
    }

    /// Gives up one reference; the last frees the job (and its module reference).
    ///
    /// The last reference may be a timer's, given up at the end of its callback: the job's
    /// `ModuleRef` is then dropped in the callback, which still runs this module's code for a
    /// few instructions after `module_put()`. That is sound because an hrtimer callback is an
    /// RCU read-side critical section (hard interrupt context; with `PREEMPT_RT`, the softirq
    /// thread, whose `local_bh_disable()` holds `rcu_read_lock()`), and `free_module()` frees a
    /// module's memory only after `synchronize_rcu()`.
    ///
    /// # Safety
    ///
    /// The caller owns a reference on the armed job `this`, and does not use the job afterwards.
    unsafe fn put(this: *mut Self) {
        // SAFETY: The caller's reference keeps the job alive until the decrement.
        if unsafe { (*this).refs.fetch_sub(1, Full) } == 1 {
            // SAFETY: The last reference: no timer is queued or will run, no handle is left
            // (type invariant). The pointer came from `KBox::leak` in `arm`. The module
            // reference dropped with it may be the last one; see above for why the code that
            // runs after it is not freed under it.
            drop(unsafe { KBox::from_raw(this) });
        }
    }

    /// The job whose timer at `offset` is `timer`.
    ///
    /// # Safety
    ///
    /// `timer` is the timer at offset `offset` of a live `IrqJob<F>`.
    unsafe fn from_timer(timer: *mut bindings::hrtimer, offset: usize) -> *mut Self {
        // SAFETY: The caller guarantees that `timer` lies at `offset` in a live job.
        unsafe { timer.byte_sub(offset).cast::<Self>() }
    }

    /// The completion "interrupt": the handler signals the fence.
    ///
    /// # Safety
    ///
    /// Called by the hrtimer core for a started `completion` timer.
    unsafe extern "C" fn completion_fired(
        timer: *mut bindings::hrtimer,
    ) -> bindings::hrtimer_restart {
        // SAFETY: The timer is a job's `completion`, kept alive by the reference it holds.
        let this = unsafe { Self::from_timer(timer, core::mem::offset_of!(Self, completion)) };
        // SAFETY: As above, until the `put` below.
        let job = unsafe { &*this };
        if let Some(fence) = job.take_fence() {
            let on_irq = job.on_irq;
            let result = on_irq(
                fence.fence(),
                &mut IrqSection {
                    _not_send: NotThreadSafe,
                },
            );
            // The library signals, so the fence has signalled when the watchdog is cancelled.
            fence.signal(result);
            job.cancel(&job.watchdog);
        }
        // SAFETY: The timer's reference, given up as its callback ends.
        unsafe { Self::put(this) };
        bindings::hrtimer_restart::HRTIMER_NORESTART
    }

    /// The watchdog: the interrupt has not come in time, the fence gets `-ETIMEDOUT` (R8).
    ///
    /// # Safety
    ///
    /// Called by the hrtimer core for a started `watchdog` timer.
    unsafe extern "C" fn watchdog_fired(
        timer: *mut bindings::hrtimer,
    ) -> bindings::hrtimer_restart {
        // SAFETY: The timer is a job's `watchdog`, kept alive by the reference it holds.
        let this = unsafe { Self::from_timer(timer, core::mem::offset_of!(Self, watchdog)) };
        // SAFETY: As above, until the `put` below.
        let job = unsafe { &*this };
        if let Some(fence) = job.take_fence() {
            fence.signal(Err(ETIMEDOUT));
            job.cancel(&job.completion);
        }
        // SAFETY: The timer's reference, given up as its callback ends.
        unsafe { Self::put(this) };
        bindings::hrtimer_restart::HRTIMER_NORESTART
    }
}

/// Starts a job's `timer` to fire after `delay`.
///
/// # Safety
///
/// `timer` is a timer of a live job, set up in [`PreparedIrqJob::new`] and never started; the
/// caller hands one reference on the job to it.
unsafe fn start(timer: *mut bindings::hrtimer, delay: Delta) {
    // SAFETY: The caller guarantees the timer; the job stays alive while it is queued or running
    // (its reference).
    unsafe {
        bindings::hrtimer_start_range_ns(
            timer,
            delay.as_nanos(),
            0,
            bindings::hrtimer_mode_HRTIMER_MODE_REL,
        )
    };
}
