// SPDX-License-Identifier: GPL-2.0

//! Fence-signalling critical sections (R4, R5, R7).
//!
//! A section covers the path from publishing a fence to signalling it. [`SignallingSection`]
//! brackets it with `dma_fence_begin_signalling()` / `dma_fence_end_signalling()`, so lockdep
//! checks it (R5), and it can only be entered through [`MayBlock::signalling_section`], which
//! borrows the task's [`MayBlock`] for the section's lifetime: inside, reservation locks, fence
//! waits and this library's `GFP_KERNEL` allocations do not compile (R4). What a section may do
//! is offered by [`SectionCtx`]: allocate with `GFP_ATOMIC` or `GFP_NOWAIT`, signal fences, nest.
//! Spinlocks are fine too.
//!
//! Work that leads to a signal runs in a section automatically when it is spawned with
//! [`spawn_signalling_work`]: that is where C drivers forget the annotation.
//!
//! What the types cannot see, lockdep still can: a driver lock taken inside a section and held
//! elsewhere while allocating or waiting (see `tests/lockdep/`).
//!
//! Without `CONFIG_LOCKDEP` the annotations compile to nothing.
//!
//! # Examples
//!
//! (KUnit case `dmabuf_lock_signalling::section_nests`.)
//!
//! ```ignore
//! let fence = timeline.prepare(&task)?; // allocates: before the section
//! let mut section = task.signalling_section();
//! let fence = fence.arm();                // no allocation, cannot fail
//! let note = section.alloc(42u32, SectionGfp::Atomic)?;
//! fence.signal(Ok(()));
//! ```

use super::context::MayBlock;
use core::{
    ops::{Deref, DerefMut},
    ptr::NonNull,
};
use kernel::{alloc::Flags, error::Result, prelude::*, types::NotThreadSafe, workqueue::Queue};

/// The allocation flags a signalling section may use (R4): neither may enter reclaim.
///
/// ```ignore
/// let item = section.alloc(item, SectionGfp::NoWait)?;
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
    /// ```ignore
    /// let node = section.alloc(node, SectionGfp::Atomic)?;
    /// ```
    pub fn alloc<T>(&self, value: T, gfp: SectionGfp) -> Result<KBox<T>> {
        Ok(KBox::new(value, gfp.flags())?)
    }

    /// Enters a nested section (R5); it ends before this one can be used again.
    ///
    /// ```ignore
    /// let inner = section.nested();
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
    /// ```ignore
    /// let section = task.signalling_section();
    /// ```
    pub fn signalling_section(&mut self) -> SignallingSection<'_> {
        SignallingSection::begin()
    }
}

/// A workqueue of the driver's own for signalling work (`WQ_MEM_RECLAIM`, as `drm_sched` uses:
/// work that signals fences may be what memory reclaim waits for, so it must make progress
/// without allocating a worker). Dropping it drains every queued item and destroys it, so a
/// driver that keeps it in its module (or device) data knows that no work item of its own runs
/// after the module's exit (no code of the module is left to run).
///
/// It lends no [`Queue`]: that would allow delayed work, whose pending timer `destroy_workqueue`
/// does not wait for; work goes in through [`spawn_signalling_work`] only. Dropping it from a
/// work item of its own queue deadlocks (the drain waits for that very item).
///
/// # Invariants
///
/// `raw` is a workqueue made by `alloc_workqueue()`, destroyed only in `drop`.
///
/// # Examples
///
/// (The sample exporter keeps one in its module.)
///
/// ```ignore
/// let queue = SignallingQueue::new(c"my_gpu_signal", &task)?;
/// spawn_signalling_work(&task, &queue, move |_section| fence.signal(Ok(())))?;
/// drop(queue); // waits for the work item
/// ```
pub struct SignallingQueue {
    raw: NonNull<kernel::bindings::workqueue_struct>,
}

// SAFETY: A workqueue is made to be used from any task; the pointer is owned.
unsafe impl Send for SignallingQueue {}

// SAFETY: Every operation on a `Queue` is safe to call concurrently.
unsafe impl Sync for SignallingQueue {}

impl SignallingQueue {
    /// Allocates an unbound `WQ_MEM_RECLAIM` workqueue called `name` (allocates, hence the
    /// [`MayBlock`]).
    pub fn new(name: &'static CStr, _task: &MayBlock) -> Result<Self> {
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
        // INVARIANT: A non-NULL result is a new workqueue that this value owns.
        Ok(Self {
            raw: NonNull::new(raw).ok_or(ENOMEM)?,
        })
    }
}

impl SignallingQueue {
    fn queue(&self) -> &Queue {
        // SAFETY: The workqueue lives until `drop` (type invariant), which needs `self`.
        unsafe { Queue::from_raw(self.raw.as_ptr()) }
    }
}

impl Drop for SignallingQueue {
    fn drop(&mut self) {
        // SAFETY: The queue is ours (type invariant). Only `spawn_signalling_work` queues on it,
        // never with a timer, and every such call borrowed `self`, so every item is queued
        // already and `destroy_workqueue` drains them all before freeing the queue.
        unsafe { kernel::bindings::destroy_workqueue(self.raw.as_ptr()) };
    }
}

/// Runs `work` on `queue` inside a fence-signalling critical section (R4, R5): the section is
/// entered before `work` runs and ended after it returns. Spawning allocates with `GFP_KERNEL`,
/// hence the [`MayBlock`]. The queue is one the driver owns and drops before its code goes
/// away, so the work item never outlives the module.
///
/// ```ignore
/// spawn_signalling_work(&task, &self.signal_queue, move |_section| {
///     fence.signal(Ok(()));
/// })?;
/// ```
pub fn spawn_signalling_work<F>(_task: &MayBlock, queue: &SignallingQueue, work: F) -> Result
where
    F: FnOnce(&mut SectionCtx) + Send + 'static,
{
    queue.queue().try_spawn(GFP_KERNEL, move || {
        let mut section = SignallingSection::begin();
        work(&mut section);
    })?;
    Ok(())
}

/// Tells lockdep that this path may wait for a fence, so a path that only sometimes waits
/// (reclaim, mmu notifiers, R3) is checked every time it runs.
///
/// `__dma_fence_might_wait()` is not exported to modules, so this makes the zero-timeout wait on
/// the always-signalled stub fence that runs it: `dma_fence_wait_timeout()` annotates before it
/// looks at the fence. Without `CONFIG_LOCKDEP` it compiles to nothing.
///
/// ```ignore
/// might_wait_for_fence(&task);
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
