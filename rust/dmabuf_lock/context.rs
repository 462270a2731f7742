// SPDX-License-Identifier: GPL-2.0

//! Execution contexts as types: what the running code may do (R4).
//!
//! A fence-signalling critical section must not sleep on a reservation lock, allocate memory
//! that may enter reclaim, or wait for fences. In C only lockdep sees such mistakes, and only
//! when the path runs. Here the operations that block take a [`MayBlock`], the proof that the
//! task is outside any section, and [`MayBlock::signalling_section`] borrows that proof mutably
//! for the whole section. Inside, the borrow checker rejects every blocking call of this library
//! as a compile error; what the section may do is offered by the
//! [`super::signalling::SectionCtx`] it hands out instead.
//!
//! This follows the lock-level tokens of Fuchsia's `lock_order` crate, reduced to the two levels
//! dma-buf needs: "may block" and "on the signalling path".
//!
//! Making the proof is safe and checked at run time: [`MayBlock::new`] refuses in atomic context
//! and, with lockdep, inside a signalling section that was entered without the proof (a C
//! section, or a leaked [`super::signalling::SignallingSection`]). A deadlock is not undefined
//! behaviour, so nothing here is `unsafe`: the types catch the mistakes they can see, lockdep
//! the rest.
//!
//! # Examples
//!
//! ```
//! use dmabuf_lock::{context::MayBlock, resv::OwnedResv};
//!
//! # let resv = KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?;
//! let mut task = MayBlock::new()?;
//! let guard = resv.lock(&task);
//! assert!(resv.is_locked());
//! drop(guard);
//! let section = task.signalling_section();
//! // `resv.lock(&task)` here is a compile error: `task` is borrowed by the section
//! // (`compile-fail/resv_lock_inside_section.rs`).
//! drop(section);
//! let _guard = resv.lock(&task); // the section is over: the proof is usable again
//! assert!(resv.is_locked());
//! # Ok::<(), Error>(())
//! ```

use super::ffi;
use kernel::{error::code::EDEADLK, error::Result, prelude::*, types::NotThreadSafe};

/// Proof that the current task may block: it runs outside atomic context and outside any
/// fence-signalling critical section, so it may sleep on reservation locks, allocate with
/// `GFP_KERNEL` and wait for fences (R4).
///
/// `MayBlock` is `!Send`: it speaks for the task that created it. It is not `Clone`, so the only
/// way to use it during a signalling section is through that section, which holds it mutably.
///
/// A second `MayBlock` made on the same task is allowed (for example in a helper function) and
/// inherits the check: made inside a section it is refused. What it cannot see is a section
/// entered *after* it was made through [`MayBlock::signalling_section`] on another proof of the
/// same task; that is a rule violation, not undefined behaviour, and lockdep reports it.
///
/// # Invariants
///
/// When the value was made, the task was not in atomic context and (with lockdep) not inside a
/// fence-signalling critical section.
#[must_use = "a proof is only useful when passed to the calls that may block"]
pub struct MayBlock {
    _not_send: NotThreadSafe,
}

impl MayBlock {
    /// Checks that the current task may block and returns the proof of it.
    ///
    /// Entry points call this once: module init, file operations, work items that are not on a
    /// signalling path. In atomic context, or inside a fence-signalling critical section (seen
    /// with lockdep), it warns once and returns `EDEADLK`; otherwise it is a `might_sleep()`
    /// point.
    ///
    /// ```
    /// # use dmabuf_lock::{context::MayBlock, resv::OwnedResv};
    /// // The body of a file operation (`ioctl`), which runs in process context.
    /// fn ioctl(resv: &OwnedResv) -> Result<isize> {
    ///     let task = MayBlock::new()?;
    ///     let _guard = resv.lock(&task);
    ///     Ok(0)
    /// }
    /// # let resv = KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?;
    /// assert_eq!(ioctl(&resv), Ok(0));
    /// assert!(!resv.is_locked());
    /// # Ok::<(), Error>(())
    /// ```
    pub fn new() -> Result<Self> {
        if !may_block_here() {
            let msg = c"dmabuf_lock: MayBlock refused: atomic context or fence-signalling section";
            // SAFETY: `msg` is a NUL-terminated static string.
            unsafe { ffi::dl_warn_once(msg.as_char_ptr()) };
            return Err(EDEADLK);
        }
        // SAFETY: `might_sleep()` only annotates; the task was just found not to be atomic.
        unsafe { ffi::dl_might_sleep() };
        // INVARIANT: Checked just above.
        Ok(Self {
            _not_send: NotThreadSafe,
        })
    }
}

/// Whether the current task is outside atomic context and outside any signalling section.
fn may_block_here() -> bool {
    // SAFETY: Reads the current task's preempt count and interrupt state; no preconditions.
    if unsafe { ffi::dl_in_atomic_context() } {
        return false;
    }
    // What follows asks lockdep, which answers "held" about everything once it has switched
    // itself off (after its first report, or a taint): then only the check above applies.
    #[cfg(CONFIG_LOCKDEP)]
    {
        // SAFETY: `debug_locks` is a plain global that lockdep only ever clears.
        if unsafe { core::ptr::read_volatile(&raw const kernel::bindings::debug_locks) } == 0 {
            return true;
        }
        // An RCU read-side critical section is atomic too, but without a preempt count only
        // lockdep sees it.
        // SAFETY: `rcu_read_lock_any_held()` only reads lockdep's and the preempt state.
        if unsafe { kernel::bindings::rcu_read_lock_any_held() } != 0 {
            return false;
        }
        // `dma_fence_begin_signalling()` returns true inside a section (or in atomic context);
        // otherwise it takes the signalling map as a read *trylock*, which records no lock
        // dependency, and the end releases it at once.
        // SAFETY: Begin and end are paired right here, on this task.
        let inside = unsafe { kernel::bindings::dma_fence_begin_signalling() };
        // SAFETY: Ends the section just begun (a no-op when `inside`).
        unsafe { kernel::bindings::dma_fence_end_signalling(inside) };
        if inside {
            return false;
        }
    }
    true
}
