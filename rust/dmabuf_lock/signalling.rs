// SPDX-License-Identifier: GPL-2.0

//! Fence-signalling critical sections (R4, R5, R7), and the work that signals a job's fence (R8).
//!
//! A section covers the path from publishing a fence to signalling it. [`SignallingSection`]
//! brackets it with `dma_fence_begin_signalling()` / `dma_fence_end_signalling()`, so lockdep
//! checks it (R5), and it can only be entered through [`MayBlock::signalling_section`], which
//! borrows the task's [`MayBlock`] for the section's lifetime: inside, reservation locks, fence
//! waits and this library's `GFP_KERNEL` allocations do not compile (R4). What a section may do
//! is offered by [`SectionCtx`]: allocate with `GFP_ATOMIC` or `GFP_NOWAIT`, signal fences, nest.
//! Spinlocks are fine too.
//!
//! A job's submission is in that order, and the types allow no other (R4, R8):
//!
//! 1. [`SignallingQueue::prepare`], before any lock: allocates the job's fence and the work
//!    item that will signal it (`GFP_KERNEL`, hence the [`MayBlock`]);
//! 2. lock the reservations and reserve fence slots (may block);
//! 3. enter a section, [`PreparedSignal::arm`] the job in it and publish its fence (add it to
//!    the reservations): the section is the submission tail;
//! 4. [`ArmedSignal::queue_after`] (or [`ArmedSignal::queue`]) inside the same section: queueing
//!    allocates nothing, and an armed job cannot outlive its section, so the whole tail from
//!    publishing to queueing is annotated.
//!
//! The work item runs its function inside a section of its own, so the annotation cannot be
//! forgotten there either.
//!
//! A job completed by the hardware's interrupt rather than by a work item is a
//! [`PreparedIrqJob`], submitted in the same order: its handler runs in atomic context with an
//! [`IrqSection`], and a watchdog started when it is armed times it out (R8). Work items remain
//! for the slow path, whatever must sleep.
//!
//! What the types cannot see, lockdep still can: a driver lock taken inside a section and held
//! elsewhere while allocating or waiting (see `tests/lockdep/`).
//!
//! Without `CONFIG_LOCKDEP` the annotations compile to nothing.
//!
//! # Examples
//!
//! ```
//! use dmabuf_lock::{
//!     context::MayBlock,
//!     fence::{Fence, FenceTimeline},
//!     resv::{FenceUsage, OwnedResv},
//!     signalling::SignallingQueue,
//! };
//! use kernel::sync::aref::ARef;
//!
//! # let mut task = MayBlock::new()?;
//! # let resv = KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?;
//! # let queue = SignallingQueue::new(c"dl_doc_signal", &task)?;
//! # let timeline = FenceTimeline::new();
//! let job = queue.prepare(&task, &timeline, |fence, _section| fence.signal(Ok(())))?;
//! let mut guard = resv.lock(&task);
//! guard.reserve_fences(1)?;
//! let section = task.signalling_section();
//! let job = job.arm(&section); // no allocation, cannot fail
//! guard.add_fence(job.fence(), FenceUsage::Write)?;
//! let published: ARef<Fence> = job.fence().into();
//! job.queue(); // no allocation either
//! drop(section);
//! drop(guard);
//! assert_eq!(published.wait(&task, false, 5000), Ok(true));
//! assert!(resv.test_signaled(FenceUsage::Write));
//! # Ok::<(), Error>(())
//! ```

mod irq;

pub use irq::{ArmedIrqJob, HwCompletion, IrqHandler, IrqSection, PreparedIrqJob};

use super::{
    context::MayBlock,
    fence::{DriverFence, Fence, FenceTimeline, ModuleRef, PreparedFence},
};
use core::{
    marker::PhantomData,
    ops::{Deref, DerefMut},
    ptr::NonNull,
};
use kernel::{
    alloc::Flags,
    error::Result,
    prelude::*,
    static_lock_class,
    sync::{
        aref::ARef,
        atomic::{Atomic, Full, Relaxed},
        Arc, Completion, LockClassKey,
    },
    time::{msecs_to_jiffies, Msecs},
    types::NotThreadSafe,
    workqueue::{impl_has_delayed_work, DelayedWork, Queue, WorkItem},
};

/// The allocation flags a signalling section may use (R4): neither may enter reclaim.
///
/// ```
/// # use dmabuf_lock::{context::MayBlock, signalling::SectionGfp};
/// # let mut task = MayBlock::new()?;
/// let section = task.signalling_section();
/// let item = section.alloc(7u32, SectionGfp::NoWait)?;
/// assert_eq!(*item, 7);
/// # Ok::<(), Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SectionGfp {
    /// `GFP_ATOMIC`: may dip into reserves.
    Atomic,
    /// `GFP_NOWAIT`: fails rather than waits.
    NoWait,
}

impl SectionGfp {
    fn flags(self) -> Flags {
        match self {
            Self::Atomic => GFP_ATOMIC,
            Self::NoWait => GFP_NOWAIT,
        }
    }
}

/// What code inside a fence-signalling critical section may do.
///
/// It is `!Send`: a section is begun and ended on one task (R7).
pub struct SectionCtx {
    _not_send: NotThreadSafe,
}

impl SectionCtx {
    /// Allocates `value` in a box with flags that cannot enter reclaim.
    ///
    /// ```
    /// # use dmabuf_lock::{context::MayBlock, signalling::SectionGfp};
    /// # let mut task = MayBlock::new()?;
    /// # let section = task.signalling_section();
    /// let node = section.alloc([0u64; 4], SectionGfp::Atomic)?;
    /// assert_eq!(node.len(), 4);
    /// # Ok::<(), Error>(())
    /// ```
    pub fn alloc<T>(&self, value: T, gfp: SectionGfp) -> Result<KBox<T>> {
        Ok(KBox::new(value, gfp.flags())?)
    }

    /// Enters a nested section (R5); it ends before this one can be used again.
    ///
    /// ```
    /// # use dmabuf_lock::{context::MayBlock, signalling::SectionGfp};
    /// # let mut task = MayBlock::new()?;
    /// let mut section = task.signalling_section();
    /// let inner = section.nested();
    /// drop(inner); // ends before the outer section is used again
    /// let node = section.alloc(1u8, SectionGfp::Atomic)?;
    /// assert_eq!(*node, 1);
    /// # Ok::<(), Error>(())
    /// ```
    pub fn nested(&mut self) -> SignallingSection<'_> {
        SignallingSection::begin()
    }
}

/// A fence-signalling critical section, ended on drop; dereferences to its [`SectionCtx`].
///
/// Leaking it (`mem::forget`) leaves lockdep believing the task is inside a section: every
/// later blocking call is reported, and [`MayBlock::new`] refuses. Nothing unsound follows.
///
/// # Invariants
///
/// `cookie` is the value `dma_fence_begin_signalling()` returned on the current task, and is
/// passed to `dma_fence_end_signalling()` exactly once, on drop.
#[must_use = "the section ends when it is dropped"]
pub struct SignallingSection<'t> {
    cookie: bool,
    ctx: SectionCtx,
    _borrow: core::marker::PhantomData<&'t mut ()>,
}

impl SignallingSection<'_> {
    fn begin() -> Self {
        // INVARIANT: The cookie comes from the begin just made on this task; `SignallingSection`
        // is `!Send` (through `SectionCtx`), so it is ended on the same task.
        Self {
            cookie: begin_signalling(),
            ctx: SectionCtx {
                _not_send: NotThreadSafe,
            },
            _borrow: core::marker::PhantomData,
        }
    }
}

impl Deref for SignallingSection<'_> {
    type Target = SectionCtx;

    fn deref(&self) -> &SectionCtx {
        &self.ctx
    }
}

impl DerefMut for SignallingSection<'_> {
    fn deref_mut(&mut self) -> &mut SectionCtx {
        &mut self.ctx
    }
}

impl Drop for SignallingSection<'_> {
    fn drop(&mut self) {
        end_signalling(self.cookie);
    }
}

impl MayBlock {
    /// Enters a fence-signalling critical section. The section borrows `self` until it ends, so
    /// none of the blocking operations of this library can be called inside it (R4).
    ///
    /// ```
    /// # use dmabuf_lock::{context::MayBlock, resv::OwnedResv};
    /// # let mut task = MayBlock::new()?;
    /// # let resv = KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?;
    /// let section = task.signalling_section();
    /// // `resv.lock(&task)` does not compile here (`compile-fail/resv_lock_inside_section.rs`).
    /// drop(section);
    /// let _guard = resv.lock(&task); // the section has ended
    /// assert!(resv.is_locked());
    /// # Ok::<(), Error>(())
    /// ```
    pub fn signalling_section(&mut self) -> SignallingSection<'_> {
        SignallingSection::begin()
    }
}

/// A workqueue of the driver's own for signalling work (`WQ_MEM_RECLAIM`, as `drm_sched` uses:
/// work that signals fences may be what memory reclaim waits for, so it must make progress
/// without allocating a worker; the system queues are not made so).
///
/// Dropping it waits until every job queued on it has run its function (delayed ones after
/// their delay), then drains and destroys the workqueue, so a driver that keeps it in its module
/// (or device) data knows that no job of its own runs after the module's exit (no code of the
/// module is left to run). Each queued job also holds a reference on the module that queued it
/// until it returns, so a queue that is leaked cannot let the module go under its jobs either.
///
/// It lends no [`Queue`]: work goes in through [`SignallingQueue::prepare`] only, which the
/// queue's drop knows how to wait for. Dropping it from a job of its own deadlocks (the drain
/// waits for that very job).
///
/// # Invariants
///
/// `raw` is a workqueue made by `alloc_workqueue()`, destroyed only in `drop`. `pending.count`
/// is one (the queue's own, given up in `drop`) plus the number of jobs queued on `raw` whose
/// function has not returned; only [`ArmedSignal::queue_after`] queues on `raw`.
///
/// # Examples
///
/// ```
/// use dmabuf_lock::{
///     context::MayBlock,
///     fence::{Fence, FenceTimeline},
///     signalling::SignallingQueue,
/// };
/// use kernel::sync::aref::ARef;
///
/// # let mut task = MayBlock::new()?;
/// # let timeline = FenceTimeline::new();
/// let queue = SignallingQueue::new(c"my_gpu_signal", &task)?;
/// let job = queue.prepare(&task, &timeline, |fence, _section| fence.signal(Ok(())))?;
/// let section = task.signalling_section();
/// let job = job.arm(&section);
/// let fence: ARef<Fence> = job.fence().into();
/// job.queue_after(20);
/// drop(section);
/// drop(queue); // waits for every queued job, delayed ones included
/// assert!(fence.is_signaled());
/// # Ok::<(), Error>(())
/// ```
pub struct SignallingQueue {
    raw: NonNull<kernel::bindings::workqueue_struct>,
    pending: Arc<Pending>,
}

// SAFETY: A workqueue is made to be used from any task; the pointer is owned.
unsafe impl Send for SignallingQueue {}

// SAFETY: Every operation on a `Queue` is safe to call concurrently, and `pending` is shared.
unsafe impl Sync for SignallingQueue {}

/// The count of a [`SignallingQueue`] and of its jobs that have not finished, and the completion
/// its drop waits on.
#[pin_data]
struct Pending {
    count: Atomic<u64>,
    #[pin]
    idle: Completion,
}

impl Pending {
    /// Counts one more job; the caller holds a count already (the queue's), so it is not zero.
    fn get(&self) {
        self.count.fetch_add(1, Relaxed);
    }

    /// Gives up a count; the last one completes `idle`.
    fn put(&self) {
        if self.count.fetch_sub(1, Full) == 1 {
            self.idle.complete_all();
        }
    }
}

impl SignallingQueue {
    /// Allocates an unbound `WQ_MEM_RECLAIM` workqueue called `name` (allocates, hence the
    /// [`MayBlock`]).
    ///
    /// ```
    /// # use dmabuf_lock::{context::MayBlock, fence::{Fence, FenceTimeline}, signalling::SignallingQueue};
    /// # use kernel::sync::aref::ARef;
    /// # let mut task = MayBlock::new()?;
    /// # let timeline = FenceTimeline::new();
    /// let queue = SignallingQueue::new(c"my_gpu_signal", &task)?;
    /// # let job = queue.prepare(&task, &timeline, |fence, _section| fence.signal(Ok(())))?;
    /// # let section = task.signalling_section();
    /// # let job = job.arm(&section);
    /// # let fence: ARef<Fence> = job.fence().into();
    /// # job.queue();
    /// # drop(section);
    /// assert_eq!(fence.wait(&task, false, 5000), Ok(true)); // signalled from the queue
    /// # Ok::<(), Error>(())
    /// ```
    pub fn new(name: &'static CStr, _task: &MayBlock) -> Result<Self> {
        let pending = Arc::pin_init(
            pin_init!(Pending {
                count: Atomic::new(1),
                idle <- Completion::new(),
            }),
            GFP_KERNEL,
        )?;
        let flags =
            kernel::bindings::wq_flags_WQ_MEM_RECLAIM | kernel::bindings::wq_flags_WQ_UNBOUND;
        // SAFETY: The format is `"%s"` with one string argument, which is static.
        let raw = unsafe {
            kernel::bindings::alloc_workqueue_noprof(
                c"%s".as_char_ptr(),
                flags,
                0,
                name.as_char_ptr(),
            )
        };
        // INVARIANT: A non-NULL result is a new workqueue that this value owns; no job is queued
        // on it, so the count is the queue's own.
        Ok(Self {
            raw: NonNull::new(raw).ok_or(ENOMEM)?,
            pending,
        })
    }

    /// Prepares a job that will signal a fence of `timeline` from this queue: allocates the
    /// fence's storage and the work item (`GFP_KERNEL`, hence the [`MayBlock`]), before any
    /// fence is published (R4). `func` receives the fence once the job runs, inside a section,
    /// and must signal it (R8; a fence it drops is cancelled with a warning).
    ///
    /// Fails with `ENOMEM`, or `ENODEV` while this module is being unloaded.
    ///
    /// ```
    /// # use dmabuf_lock::{context::MayBlock, fence::{Fence, FenceTimeline}, signalling::SignallingQueue};
    /// # use kernel::sync::aref::ARef;
    /// # let mut task = MayBlock::new()?;
    /// # let timeline = FenceTimeline::new();
    /// # let queue = SignallingQueue::new(c"dl_doc_signal", &task)?;
    /// let job = queue.prepare(&task, &timeline, |fence, _section| fence.signal(Err(EIO)))?;
    /// # let section = task.signalling_section();
    /// # let job = job.arm(&section);
    /// # let fence: ARef<Fence> = job.fence().into();
    /// # job.queue();
    /// # drop(section);
    /// # assert_eq!(fence.wait(&task, false, 5000), Ok(true));
    /// assert_eq!(fence.status(), Err(EIO)); // as the job's function signalled it
    /// # Ok::<(), Error>(())
    /// ```
    pub fn prepare<'a, F>(
        &'a self,
        task: &MayBlock,
        timeline: &'a FenceTimeline,
        func: F,
    ) -> Result<PreparedSignal<'a, F>>
    where
        F: FnOnce(DriverFence, &mut SectionCtx) + Send + 'static,
    {
        let fence = timeline.prepare(task)?;
        let module = ModuleRef::this_module()?;
        let work = KBox::pin_init(
            pin_init!(SignalWork {
                work <- signal_work_class(),
                fence: None,
                func: Some(func),
                pending: self.pending.clone(),
                _module: module,
            }),
            GFP_KERNEL,
        )?;
        Ok(PreparedSignal {
            fence,
            work,
            queue: self,
        })
    }

    fn queue(&self) -> &Queue {
        // SAFETY: The workqueue lives until `drop` (type invariant), which needs `self`.
        unsafe { Queue::from_raw(self.raw.as_ptr()) }
    }
}

impl Drop for SignallingQueue {
    fn drop(&mut self) {
        // No job can be queued any more (queueing borrows `self`); wait until every job queued
        // before has run its function, delayed ones included.
        self.pending.put();
        self.pending.idle.wait_for_completion();
        // SAFETY: The queue is ours (type invariant). Every job queued on it has run its
        // function, so no timer of a delayed job is pending; `destroy_workqueue` drains the
        // jobs' last instructions before freeing the queue.
        unsafe { kernel::bindings::destroy_workqueue(self.raw.as_ptr()) };
    }
}

/// A job's fence storage and work item, allocated ahead of the submission tail; made by
/// [`SignallingQueue::prepare`]. Dropping it frees both: nothing was published.
///
/// # Examples
///
/// ```
/// # use dmabuf_lock::{context::MayBlock, fence::{Fence, FenceTimeline}, signalling::SignallingQueue};
/// # use kernel::sync::aref::ARef;
/// # let mut task = MayBlock::new()?;
/// # let timeline = FenceTimeline::new();
/// # let queue = SignallingQueue::new(c"dl_doc_signal", &task)?;
/// # let prepared = queue.prepare(&task, &timeline, |fence, _section| fence.signal(Ok(())))?;
/// let section = task.signalling_section();
/// let job = prepared.arm(&section);
/// # let fence: ARef<Fence> = job.fence().into();
/// job.queue();
/// # drop(section);
/// assert_eq!(fence.wait(&task, false, 5000), Ok(true));
/// # Ok::<(), Error>(())
/// ```
#[must_use = "dropping it frees the job; arm it inside the submission tail's section"]
pub struct PreparedSignal<'a, F: FnOnce(DriverFence, &mut SectionCtx) + Send + 'static> {
    fence: PreparedFence<'a>,
    work: Pin<KBox<SignalWork<F>>>,
    queue: &'a SignallingQueue,
}

impl<'a, F: FnOnce(DriverFence, &mut SectionCtx) + Send + 'static> PreparedSignal<'a, F> {
    /// Arms the job's fence, to be published now: it takes the `section` of the submission tail,
    /// and the armed job borrows it, so the fence is published, and the job queued or cancelled,
    /// inside that section (R4, R5). Allocates nothing and cannot fail.
    ///
    /// ```
    /// # use dmabuf_lock::{context::MayBlock, fence::{Fence, FenceTimeline}, signalling::SignallingQueue};
    /// # use kernel::sync::aref::ARef;
    /// # let mut task = MayBlock::new()?;
    /// # let timeline = FenceTimeline::new();
    /// # let queue = SignallingQueue::new(c"dl_doc_signal", &task)?;
    /// # let prepared = queue.prepare(&task, &timeline, |fence, _section| fence.signal(Ok(())))?;
    /// # let section = task.signalling_section();
    /// let job = prepared.arm(&section);
    /// assert!(!job.fence().is_signaled()); // published, to be signalled by the job
    /// # let fence: ARef<Fence> = job.fence().into();
    /// # job.queue();
    /// # drop(section);
    /// # assert_eq!(fence.wait(&task, false, 5000), Ok(true));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn arm<'s>(self, _section: &'s SectionCtx) -> ArmedSignal<'s, F>
    where
        'a: 's,
    {
        let Self {
            fence,
            mut work,
            queue,
        } = self;
        let fence = fence.arm();
        let published = ARef::from(fence.fence());
        *work.as_mut().project().fence = Some(fence);
        ArmedSignal {
            fence: published,
            work: Some(work),
            queue,
            _section: PhantomData,
        }
    }
}

/// A job whose fence is armed, inside the submission tail's section, which it borrows.
///
/// Queue it with [`ArmedSignal::queue`] or [`ArmedSignal::queue_after`]. Dropped instead (an
/// error after publishing, for example adding the fence to a reservation failed), it signals
/// its fence with `-ECANCELED` and frees the work item unrun: the fence signals either way (R8).
///
/// # Examples
///
/// ```
/// # use dmabuf_lock::{context::MayBlock, fence::FenceTimeline, resv::{FenceUsage, OwnedResv}, signalling::SignallingQueue};
/// # let mut task = MayBlock::new()?;
/// # let resv = KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?;
/// # let timeline = FenceTimeline::new();
/// # let queue = SignallingQueue::new(c"dl_doc_signal", &task)?;
/// # let prepared = queue.prepare(&task, &timeline, |fence, _section| fence.signal(Ok(())))?;
/// # let delay_ms = 10;
/// # let mut guard = resv.lock(&task);
/// # guard.reserve_fences(1)?;
/// # let section = task.signalling_section();
/// let job = prepared.arm(&section);
/// guard.add_fence(job.fence(), FenceUsage::Write)?;
/// job.queue_after(delay_ms);
/// # drop(section);
/// # drop(guard);
/// assert_eq!(resv.wait(&task, FenceUsage::Write, false, 5000), Ok(true));
/// # Ok::<(), Error>(())
/// ```
#[must_use = "queue it; dropping it cancels its fence"]
pub struct ArmedSignal<'s, F: FnOnce(DriverFence, &mut SectionCtx) + Send + 'static> {
    fence: ARef<Fence>,
    work: Option<Pin<KBox<SignalWork<F>>>>,
    queue: &'s SignallingQueue,
    _section: PhantomData<&'s SectionCtx>,
}

impl<F: FnOnce(DriverFence, &mut SectionCtx) + Send + 'static> ArmedSignal<'_, F> {
    /// Returns the job's fence, to publish it.
    ///
    /// ```
    /// # use dmabuf_lock::{context::MayBlock, fence::{Fence, FenceTimeline}, resv::{FenceUsage, OwnedResv}, signalling::SignallingQueue};
    /// # use kernel::sync::aref::ARef;
    /// # let mut task = MayBlock::new()?;
    /// # let resv = KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?;
    /// # let timeline = FenceTimeline::new();
    /// # let queue = SignallingQueue::new(c"dl_doc_signal", &task)?;
    /// # let prepared = queue.prepare(&task, &timeline, |fence, _section| fence.signal(Ok(())))?;
    /// # let mut guard = resv.lock(&task);
    /// # guard.reserve_fences(1)?;
    /// # let section = task.signalling_section();
    /// # let job = prepared.arm(&section);
    /// guard.add_fence(job.fence(), FenceUsage::Write)?;
    /// let fence: ARef<Fence> = job.fence().into();
    /// drop(job); // not queued after all (an error later in the submission): cancelled
    /// assert_eq!(fence.status(), Err(ECANCELED));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn fence(&self) -> &Fence {
        &self.fence
    }

    /// Queues the job to run at once.
    ///
    /// ```
    /// # use dmabuf_lock::{context::MayBlock, fence::{Fence, FenceTimeline}, signalling::SignallingQueue};
    /// # use kernel::sync::aref::ARef;
    /// # let mut task = MayBlock::new()?;
    /// # let timeline = FenceTimeline::new();
    /// # let queue = SignallingQueue::new(c"dl_doc_signal", &task)?;
    /// # let prepared = queue.prepare(&task, &timeline, |fence, _section| fence.signal(Ok(())))?;
    /// # let section = task.signalling_section();
    /// # let job = prepared.arm(&section);
    /// # let fence: ARef<Fence> = job.fence().into();
    /// job.queue();
    /// # drop(section);
    /// assert_eq!(fence.wait(&task, false, 5000), Ok(true));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn queue(self) {
        self.queue_after(0);
    }

    /// Queues the job to run after `delay_ms` milliseconds. Allocates nothing: the work item
    /// was allocated in [`SignallingQueue::prepare`].
    ///
    /// ```
    /// # use dmabuf_lock::{context::MayBlock, fence::{Fence, FenceTimeline}, signalling::SignallingQueue};
    /// # use kernel::sync::aref::ARef;
    /// # let mut task = MayBlock::new()?;
    /// # let timeline = FenceTimeline::new();
    /// # let queue = SignallingQueue::new(c"dl_doc_signal", &task)?;
    /// # let prepared = queue.prepare(&task, &timeline, |fence, _section| fence.signal(Ok(())))?;
    /// # let section = task.signalling_section();
    /// # let job = prepared.arm(&section);
    /// # let fence: ARef<Fence> = job.fence().into();
    /// job.queue_after(10);
    /// # drop(section);
    /// assert_eq!(fence.wait(&task, false, 5000), Ok(true)); // 10 ms later
    /// # Ok::<(), Error>(())
    /// ```
    pub fn queue_after(mut self, delay_ms: Msecs) {
        if let Some(work) = self.work.take() {
            // INVARIANT: Counted before it is queued, so before its function can return.
            self.queue.pending.get();
            self.queue
                .queue()
                .enqueue_delayed(work, msecs_to_jiffies(delay_ms));
        }
    }
}

impl<F: FnOnce(DriverFence, &mut SectionCtx) + Send + 'static> Drop for ArmedSignal<'_, F> {
    fn drop(&mut self) {
        // Not queued: the job will not run, and its published fence is cancelled.
        if let Some(mut work) = self.work.take() {
            if let Some(fence) = work.as_mut().project().fence.take() {
                fence.cancel();
            }
        }
    }
}

/// The work item of a job: runs `func` with the fence inside a section, on its queue.
#[pin_data]
struct SignalWork<F> {
    #[pin]
    work: DelayedWork<SignalWork<F>>,
    fence: Option<DriverFence>,
    func: Option<F>,
    pending: Arc<Pending>,
    /// This module's code runs the job: dropped last.
    _module: ModuleRef,
}

/// The work item's and its timer's lockdep classes, from [`SignalWorkClass::get`].
fn signal_work_class<F>() -> impl PinInit<DelayedWork<SignalWork<F>>>
where
    F: FnOnce(DriverFence, &mut SectionCtx) + Send + 'static,
{
    let class = SignalWorkClass::get();
    DelayedWork::new(
        class.work_name,
        class.work_key,
        class.timer_name,
        class.timer_key,
    )
}

/// The lockdep class keys and names of the jobs' work items and timers.
///
/// They come from a function that is not generic: a `static` of a generic function (the keys)
/// is shared by all its instances, but a string literal (the names) may not be, and lockdep
/// warns about one key registered under two names. One set per module, since the library is
/// compiled into each.
struct SignalWorkClass {
    work_name: &'static CStr,
    work_key: Pin<&'static LockClassKey>,
    timer_name: &'static CStr,
    timer_key: Pin<&'static LockClassKey>,
}

impl SignalWorkClass {
    fn get() -> Self {
        Self {
            work_name: c"dmabuf_lock::SignalWork",
            work_key: static_lock_class!(),
            timer_name: c"dmabuf_lock::SignalWork_timer",
            timer_key: static_lock_class!(),
        }
    }
}

impl_has_delayed_work! {
    impl{F} HasDelayedWork<SignalWork<F>> for SignalWork<F> { self.work }
}

impl<F: FnOnce(DriverFence, &mut SectionCtx) + Send + 'static> WorkItem for SignalWork<F> {
    type Pointer = Pin<KBox<Self>>;

    fn run(mut this: Pin<KBox<Self>>) {
        let job = this.as_mut().project();
        if let (Some(fence), Some(func)) = (job.fence.take(), job.func.take()) {
            let mut section = SignallingSection::begin();
            func(fence, &mut section);
        }
        // The queue's drop may go on now; destroying the workqueue waits for this function to
        // return, and the module reference, dropped with `this`, goes last.
        this.pending.put();
    }
}

/// Tells lockdep that this path may wait for a fence, so a path that only sometimes waits
/// (reclaim, mmu notifiers, R3) is checked every time it runs.
///
/// `__dma_fence_might_wait()` is not exported to modules, so this makes the zero-timeout wait on
/// the always-signalled stub fence that runs it: `dma_fence_wait_timeout()` annotates before it
/// looks at the fence. Without `CONFIG_LOCKDEP` it compiles to nothing.
///
/// ```
/// # use dmabuf_lock::{context::MayBlock, resv::OwnedResv, signalling::might_wait_for_fence};
/// # let task = MayBlock::new()?;
/// # let resv = KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?;
/// let _guard = resv.lock(&task);
/// might_wait_for_fence(&task); // waiting under a reservation is allowed (R3)
/// // Lockdep reported nothing: after a report it switches itself off.
/// // SAFETY: `debug_locks` is a plain global that lockdep only ever clears.
/// assert_eq!(unsafe { core::ptr::read_volatile(&raw const kernel::bindings::debug_locks) }, 1);
/// # Ok::<(), Error>(())
/// ```
pub fn might_wait_for_fence(_task: &MayBlock) {
    #[cfg(CONFIG_LOCKDEP)]
    {
        // SAFETY: `dma_fence_get_stub` returns a new reference to the signalled stub fence.
        let stub = unsafe { kernel::bindings::dma_fence_get_stub() };
        // SAFETY: `stub` is a valid fence; a zero timeout returns at once, and the caller may
        // sleep (`MayBlock`), as the wait's annotation requires.
        unsafe { kernel::bindings::dma_fence_wait_timeout(stub, false, 0) };
        // SAFETY: Drops the reference taken above.
        unsafe { super::ffi::dl_dma_fence_put(stub) };
    }
}

pub(super) fn begin_signalling() -> bool {
    #[cfg(CONFIG_LOCKDEP)]
    {
        // SAFETY: Beginning a section has no preconditions; the cookie is ended by the caller.
        unsafe { kernel::bindings::dma_fence_begin_signalling() }
    }
    #[cfg(not(CONFIG_LOCKDEP))]
    {
        true
    }
}

pub(super) fn end_signalling(cookie: bool) {
    #[cfg(CONFIG_LOCKDEP)]
    // SAFETY: `cookie` came from `begin_signalling` on this task and is ended once (the
    // invariant of `SignallingSection`).
    unsafe {
        kernel::bindings::dma_fence_end_signalling(cookie)
    };
    #[cfg(not(CONFIG_LOCKDEP))]
    let _ = cookie;
}
