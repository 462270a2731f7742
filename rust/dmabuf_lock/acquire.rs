// SPDX-License-Identifier: GPL-2.0

//! Acquire contexts: the `ww_acquire_ctx` under the multi-object locker (R6).
//!
//! This module is private to the library. Its only user is [`super::locker::ResvLocker`], which
//! owns the context *and every lock taken in it*: a lock held in a context points back at the
//! context (`ww_mutex.ctx`), and the next task to contend reads through that pointer, so a guard
//! that could leave the context's owner (be forgotten, moved elsewhere) while the context is
//! finalised would be a use-after-free in safe code. Keeping both in one owner makes that shape
//! impossible to write: a leaked locker leaks its context too, and the context's memory outlives
//! every lock that points at it.
//!
//! Rules: R6 (one context for several reservations, backoff on `-EDEADLK`, `-EALREADY` for
//! duplicates, `ww_acquire_done` once all are held, `ww_acquire_fini` after the last unlock),
//! R7 (the context is `!Send`).

mod ww;

use super::resv::{Resv, ResvGuard};
use core::cell::Cell;
use kernel::{
    bindings,
    error::{code::*, Error, Result},
    prelude::*,
    types::{NotThreadSafe, Opaque},
};

/// A wound/wait acquire context of `reservation_ww_class`.
///
/// # Invariants
///
/// `raw` is initialised by [`ww::init`], which sets it up as `ww_acquire_init(raw,
/// &reservation_ww_class)` does, and not yet finalised ([`ww::fini`]). `done` is true once
/// [`ww::done`] (`ww_acquire_done`) was called on it.
#[pin_data(PinnedDrop)]
pub(super) struct AcquireCtx {
    #[pin]
    raw: Opaque<bindings::ww_acquire_ctx>,
    done: Cell<bool>,
    _not_send: NotThreadSafe,
}

/// The result of locking in a context.
pub(super) enum Acquired<'g> {
    /// The lock was taken; the guard unlocks it.
    Locked(ResvGuard<'g>),
    /// This context already holds the lock (`-EALREADY`): a duplicate, not an error.
    AlreadyHeld,
}

/// Why a lock in a context was not taken.
pub(super) enum LockError<'o> {
    /// `-EDEADLK`: an older context holds `0`. Drop every lock of the context, then take this one
    /// first with [`AcquireCtx::lock_contended`].
    Deadlock(&'o Resv),
    /// `-EINTR` or any other error from the ww_mutex code.
    Failed(Error),
}

impl From<LockError<'_>> for Error {
    fn from(e: LockError<'_>) -> Error {
        match e {
            LockError::Deadlock(_) => EDEADLK,
            LockError::Failed(e) => e,
        }
    }
}

impl AcquireCtx {
    /// Returns an initialiser for a new context.
    pub(super) fn new() -> impl PinInit<Self> {
        // INVARIANT: `ww::init` initialises the context as `ww_acquire_init(ctx,
        // &reservation_ww_class)` does.
        pin_init!(Self {
            // SAFETY: `slot` is valid for writes, aligned and not initialised (`Opaque::ffi_init`
            // hands out its own storage); the context is pinned, so it stays where it is while
            // the ww_mutex code keeps pointers to it (`ww_mutex.ctx`; with lock debugging, its
            // lockdep maps too).
            raw <- Opaque::ffi_init(|slot| unsafe { ww::init(slot) }),
            done: Cell::new(false),
            _not_send: NotThreadSafe,
        })
    }

    fn as_raw(&self) -> *mut bindings::ww_acquire_ctx {
        self.raw.get()
    }

    /// Takes the object a previous pass backed off for.
    ///
    /// The caller holds no lock in this context (the locker empties its list of held locks
    /// first). A context that holds nothing is never asked to back off, so this is the slow path
    /// of `dma_resv_lock_slow()`; unlike that function it checks the result, and returns a guard
    /// only when the lock was really taken.
    ///
    /// # Safety
    ///
    /// The returned guard is dropped before the context is finalised or restarted.
    pub(super) unsafe fn lock_contended<'o>(
        &self,
        resv: &'o Resv,
        interruptible: bool,
    ) -> Result<ResvGuard<'o>> {
        // SAFETY: Both objects are initialised (type invariants); the context is pinned.
        let ret = unsafe {
            if interruptible {
                bindings::ww_mutex_lock_interruptible(resv.ww_mutex(), self.as_raw())
            } else {
                bindings::ww_mutex_lock(resv.ww_mutex(), self.as_raw())
            }
        };
        kernel::error::to_result(ret)?;
        // SAFETY: The lock call returned 0, so the current task holds the lock; the caller keeps
        // the guard inside the context's lifetime.
        Ok(unsafe { ResvGuard::new(resv) })
    }

    /// Locks `resv` in this context, during the acquire phase: the locker calls it only before it
    /// marks the context done ([`AcquireCtx::mark_done`]). Locking after that is a rule violation
    /// (R6), not UB; the header's debugging code warns about it where it is compiled in.
    ///
    /// # Safety
    ///
    /// On `Ok(Acquired::Locked(_))` the guard is dropped before the context is finalised or
    /// restarted.
    #[inline(always)]
    pub(super) unsafe fn lock<'o>(
        &self,
        resv: &'o Resv,
        interruptible: bool,
    ) -> core::result::Result<Acquired<'o>, LockError<'o>> {
        // SAFETY: `resv` and the context are initialised (type invariants of both).
        let ret = unsafe {
            if interruptible {
                bindings::ww_mutex_lock_interruptible(resv.ww_mutex(), self.as_raw())
            } else {
                bindings::ww_mutex_lock(resv.ww_mutex(), self.as_raw())
            }
        };
        match ret {
            // SAFETY: 0 means the current task now holds the lock in this context; the caller
            // keeps the guard inside the context's lifetime.
            0 => Ok(Acquired::Locked(unsafe { ResvGuard::new(resv) })),
            e if e == EALREADY.to_errno() => Ok(Acquired::AlreadyHeld),
            e if e == EDEADLK.to_errno() => Err(LockError::Deadlock(resv)),
            e => Err(LockError::Failed(Error::from_errno(e))),
        }
    }

    /// Whether the acquire phase has ended ([`AcquireCtx::mark_done`]).
    pub(super) fn is_done(&self) -> bool {
        self.done.get()
    }

    /// Marks the end of the acquire phase (`ww_acquire_done`): nothing more may be locked in this
    /// context until it is restarted.
    pub(super) fn mark_done(&self) {
        if !self.done.replace(true) {
            // SAFETY: The context is initialised (type invariant) and `done` was false, so
            // `ww_acquire_done` is called once.
            unsafe { ww::done(self.as_raw()) };
        }
    }

    /// Finalises the context and initialises it again.
    ///
    /// # Safety
    ///
    /// No lock is held in the context: every guard taken through it has been dropped.
    pub(super) unsafe fn restart(self: Pin<&mut Self>) {
        // SAFETY: Only `done`, which is not structurally pinned, is replaced; `raw` stays put.
        let this = unsafe { self.get_unchecked_mut() };
        // SAFETY: The context is initialised (type invariant) and holds no lock (the caller's
        // guarantee), so it may be finalised; it is initialised again in place right away.
        unsafe {
            ww::fini(this.raw.get());
            ww::init(this.raw.get());
        }
        // INVARIANT: A fresh context has not been marked done.
        this.done.set(false);
    }
}

#[pinned_drop]
impl PinnedDrop for AcquireCtx {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: The context is initialised (type invariant). Its only owner, the locker,
        // drops every guard taken in it before its fields are dropped, so no lock is held in it:
        // `ww_acquire_fini` may run, once.
        unsafe { ww::fini(self.raw.get()) };
    }
}
