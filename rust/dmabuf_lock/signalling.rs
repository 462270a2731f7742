// SPDX-License-Identifier: GPL-2.0

//! Fence-signalling critical sections (R4, R5, R7).
//!
//! A section covers the path from publishing a fence to signalling it. [`SignallingSection`]
//! brackets it with `dma_fence_begin_signalling()` / `dma_fence_end_signalling()`, so lockdep
//! checks it (R5), and it can only be entered through [`TaskCtx::signalling_section`], which
//! borrows the task's [`TaskCtx`] for the section's lifetime: inside, reservation locks, fence
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

use super::context::TaskCtx;
use core::ops::{Deref, DerefMut};
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
/// # Invariants
///
/// `cookie` is the value `dma_fence_begin_signalling()` returned on the current task, and is
/// passed to `dma_fence_end_signalling()` exactly once, on drop.
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

impl TaskCtx {
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

/// Runs `work` on `queue` inside a fence-signalling critical section (R4, R5): the section is
/// entered before `work` runs and ended after it returns. Spawning allocates with `GFP_KERNEL`,
/// hence the [`TaskCtx`].
///
/// ```ignore
/// spawn_signalling_work(&task, workqueue::system_unbound(), move |_section| {
///     fence.signal(Ok(()));
/// })?;
/// ```
pub fn spawn_signalling_work<F>(_task: &TaskCtx, queue: &Queue, work: F) -> Result
where
    F: FnOnce(&mut SectionCtx) + Send + 'static,
{
    queue.try_spawn(GFP_KERNEL, move || {
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
pub fn might_wait_for_fence(_task: &TaskCtx) {
    #[cfg(CONFIG_LOCKDEP)]
    {
        // SAFETY: `dma_fence_get_stub` returns a new reference to the signalled stub fence.
        let stub = unsafe { kernel::bindings::dma_fence_get_stub() };
        // SAFETY: `stub` is a valid fence; a zero timeout returns at once, and the caller may
        // sleep (`TaskCtx`), as the wait's annotation requires.
        unsafe { kernel::bindings::dma_fence_wait_timeout(stub, false, 0) };
        // SAFETY: Drops the reference taken above.
        unsafe { super::ffi::dl_dma_fence_put(stub) };
    }
}

pub(crate) fn begin_signalling() -> bool {
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

pub(crate) fn end_signalling(cookie: bool) {
    #[cfg(CONFIG_LOCKDEP)]
    // SAFETY: `cookie` came from `begin_signalling` on this task and is ended once (the
    // invariant of `SignallingSection`).
    unsafe {
        kernel::bindings::dma_fence_end_signalling(cookie)
    };
    #[cfg(not(CONFIG_LOCKDEP))]
    let _ = cookie;
}
