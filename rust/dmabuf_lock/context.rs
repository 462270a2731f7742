// SPDX-License-Identifier: GPL-2.0

//! Execution contexts as types: what the running code may do (R4).
//!
//! A fence-signalling critical section must not sleep on a reservation lock, allocate memory
//! that may enter reclaim, or wait for fences. In C only lockdep sees such mistakes, and only
//! when the path runs. Here the operations that block take a [`TaskCtx`], the proof that the
//! task is outside any section, and [`TaskCtx::signalling_section`] borrows that proof mutably
//! for the whole section. Inside, the borrow checker rejects every blocking call of this library
//! as a compile error; what the section may do is offered by the
//! [`super::signalling::SectionCtx`] it hands out instead.
//!
//! This follows the lock-level tokens of Fuchsia's `lock_order` crate, reduced to the two levels
//! dma-buf needs: "may block" and "on the signalling path".
//!
//! # Examples
//!
//! (KUnit case `dmabuf_lock_signalling::section_nests`.)
//!
//! ```ignore
//! // SAFETY: Module init runs outside any fence-signalling critical section.
//! let mut task = unsafe { TaskCtx::new() };
//! let guard = resv.lock(&task);
//! drop(guard);
//! let section = task.signalling_section();
//! // `resv.lock(&task)` here is a compile error: `task` is borrowed by the section.
//! ```

use kernel::types::NotThreadSafe;

/// Proof that the current task runs outside any fence-signalling critical section, so it may
/// sleep on reservation locks, allocate with `GFP_KERNEL` and wait for fences.
///
/// `TaskCtx` is `!Send`: it speaks for the task that created it. It is not `Clone`, so the only
/// way to use it during a signalling section is through that section, which holds it mutably.
///
/// # Invariants
///
/// The task that owns the value is not inside a fence-signalling critical section, except one
/// entered through [`TaskCtx::signalling_section`] on this value (which borrows it).
pub struct TaskCtx {
    _not_send: NotThreadSafe,
}

impl TaskCtx {
    /// Creates the proof for the current task.
    ///
    /// Entry points call this once: module init, file operations, work items that are not on a
    /// signalling path.
    ///
    /// # Safety
    ///
    /// The current task is not inside a fence-signalling critical section, and does not enter
    /// one while the returned value exists, other than through
    /// [`TaskCtx::signalling_section`] on it.
    pub unsafe fn new() -> Self {
        // INVARIANT: The caller guarantees the task is outside any section.
        Self {
            _not_send: NotThreadSafe,
        }
    }
}
