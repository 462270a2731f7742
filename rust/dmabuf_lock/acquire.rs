// SPDX-License-Identifier: GPL-2.0

//! Acquire contexts: locking several reservations with wound/wait backoff (R6).
//!
//! An [`AcquireCtx`] is a `ww_acquire_ctx` of `reservation_ww_class`, pinned on the stack. Locks
//! are taken in a [`Round`]; every guard of a round borrows it. When a lock comes back with
//! `-EDEADLK` the caller gets a [`Contended`] object, drops the round (and with it every guard),
//! and starts the next round with [`AcquireCtx::begin`], which takes the contended object first
//! through `dma_resv_lock_slow`. Starting a round needs the context mutably, so the borrow
//! checker rejects taking the slow path while any guard of the context is alive: "drop every
//! lock first" is a compile error to forget, not a run-time warning.
//!
//! Rules: R6 (one context for several reservations, backoff on `-EDEADLK`, `-EALREADY` for
//! duplicates, `ww_acquire_done` once all are held, `ww_acquire_fini` after the last unlock),
//! R7 (contexts and guards are `!Send`), R4 (every lock call needs the [`TaskCtx`]).
//!
//! # Examples
//!
//! Locking two objects in any order (the KUnit case `dmabuf_lock_acquire::two_objects_loop`):
//!
//! ```ignore
//! stack_pin_init!(let ctx = AcquireCtx::new());
//! let mut contended = None;
//! loop {
//!     let round = ctx.as_mut().begin(&task, contended.take());
//!     let a = match round.lock(&task, &a_resv) {
//!         Ok(a) => a,
//!         Err(c) => { contended = Some(c); continue; }
//!     };
//!     let b = match round.lock(&task, &b_resv) {
//!         Ok(b) => b,
//!         Err(c) => { contended = Some(c); continue; }
//!     };
//!     round.done();
//!     // ... both reservations are locked here ...
//!     break;
//! }
//! ```

use super::{
    context::TaskCtx,
    ffi,
    resv::{Resv, ResvGuard},
};
use core::cell::Cell;
use kernel::{
    bindings,
    error::{code::*, Error, Result},
    prelude::*,
    types::{NotThreadSafe, Opaque},
};

/// A wound/wait acquire context of `reservation_ww_class`.
///
/// Pin it on the stack with `stack_pin_init!(let ctx = AcquireCtx::new());`. It is finalised
/// (`ww_acquire_fini`) on drop, which the borrow checker places after every guard taken through
/// it; a finalised context cannot be named again.
///
/// # Invariants
///
/// `raw` is initialised by `ww_acquire_init` for `reservation_ww_class` and not yet finalised.
/// `done` is true once `ww_acquire_done` was called on it.
#[pin_data(PinnedDrop)]
pub struct AcquireCtx {
    #[pin]
    raw: Opaque<bindings::ww_acquire_ctx>,
    done: Cell<bool>,
    _not_send: NotThreadSafe,
}

impl AcquireCtx {
    /// Returns an initialiser for a new context.
    ///
    /// ```ignore
    /// stack_pin_init!(let ctx = AcquireCtx::new());
    /// ```
    pub fn new() -> impl PinInit<Self> {
        // INVARIANT: `ww_acquire_init` initialises the context for `reservation_ww_class`.
        pin_init!(Self {
            // SAFETY: `ww_acquire_init` initialises the context in place; it is pinned, so the
            // lockdep map and the owner pointers that the ww_mutex code keeps stay valid.
            raw <- Opaque::ffi_init(|slot| unsafe { ffi::dl_ww_acquire_init(slot) }),
            done: Cell::new(false),
            _not_send: NotThreadSafe,
        })
    }

    /// Starts a round of locking. When the previous round ended in `-EDEADLK`, pass its
    /// [`Contended`] object: it is locked first with `dma_resv_lock_slow` and held by the round.
    ///
    /// Taking `self` mutably is what makes the slow path safe: no guard of an earlier round can be
    /// alive here, as R6 requires.
    ///
    /// ```ignore
    /// let round = ctx.as_mut().begin(&task, contended.take());
    /// ```
    pub fn begin<'r>(
        self: Pin<&'r mut Self>,
        _task: &TaskCtx,
        contended: Option<Contended<'r>>,
    ) -> Round<'r> {
        let ctx = self.into_ref().get_ref();
        // A non-interruptible slow-path lock returns only once the lock is held.
        let slow = contended.and_then(|c| ctx.lock_contended(c, false).ok());
        Round { ctx, _slow: slow }
    }

    /// Like [`AcquireCtx::begin`], but the slow-path lock of the contended object may be
    /// interrupted by a signal, in which case `EINTR` is returned and nothing is held.
    ///
    /// ```ignore
    /// let round = ctx.as_mut().begin_interruptible(&task, contended.take())?;
    /// ```
    pub fn begin_interruptible<'r>(
        self: Pin<&'r mut Self>,
        _task: &TaskCtx,
        contended: Option<Contended<'r>>,
    ) -> Result<Round<'r>> {
        let ctx = self.into_ref().get_ref();
        let slow = contended.map(|c| ctx.lock_contended(c, true)).transpose()?;
        Ok(Round { ctx, _slow: slow })
    }

    /// Takes the object a previous round backed off for, while this context holds no lock.
    ///
    /// Only called with the context borrowed mutably or owned by a locker that dropped all its
    /// locks, so the context holds nothing, which is what `dma_resv_lock_slow` requires.
    pub(crate) fn lock_contended<'r>(
        &self,
        c: Contended<'r>,
        interruptible: bool,
    ) -> Result<ResvGuard<'r>> {
        let same = c.ctx == self.as_raw();
        if !same {
            // A context holding nothing never has to back off, so a plain lock is correct;
            // only the slow path insists on the context that contended.
            pr_warn!("contended object passed to another acquire context\n");
        }
        let (resv, ctx) = (c.resv.as_raw(), self.as_raw());
        // SAFETY: Both objects are initialised (type invariants) and the context holds no lock.
        let ret = unsafe {
            match (same, interruptible) {
                (true, false) => {
                    ffi::dl_dma_resv_lock_slow(resv, ctx);
                    0
                }
                (true, true) => ffi::dl_dma_resv_lock_slow_interruptible(resv, ctx),
                (false, false) => bindings::ww_mutex_lock(c.resv.ww_mutex(), ctx),
                (false, true) => bindings::ww_mutex_lock_interruptible(c.resv.ww_mutex(), ctx),
            }
        };
        kernel::error::to_result(ret)?;
        // SAFETY: The lock call returned 0, so the current task holds the lock.
        Ok(unsafe { ResvGuard::new(c.resv) })
    }

    pub(crate) fn as_raw(&self) -> *mut bindings::ww_acquire_ctx {
        self.raw.get()
    }

    /// Locks `resv` in this context without a round: the building block of [`Round::lock`] and of
    /// the multi-object locker.
    ///
    /// # Safety
    ///
    /// On `Ok(Acquired::Locked(_))` the caller becomes responsible for unlocking `resv` before the
    /// context is finalised; the guard inside may be forgotten only if the caller unlocks `resv`
    /// itself.
    #[inline(always)]
    pub(crate) unsafe fn lock_raw<'o>(
        &self,
        resv: &'o Resv,
        interruptible: bool,
    ) -> core::result::Result<Acquired<'o>, LockError<'o>> {
        if self.done.get() {
            return Err(LockError::AfterDone);
        }
        // SAFETY: `resv` and the context are initialised (type invariants of both).
        let ret = unsafe {
            if interruptible {
                bindings::ww_mutex_lock_interruptible(resv.ww_mutex(), self.as_raw())
            } else {
                bindings::ww_mutex_lock(resv.ww_mutex(), self.as_raw())
            }
        };
        match ret {
            // SAFETY: 0 means the current task now holds the lock in this context.
            0 => Ok(Acquired::Locked(unsafe { ResvGuard::new(resv) })),
            e if e == EALREADY.to_errno() => Ok(Acquired::AlreadyHeld),
            e if e == EDEADLK.to_errno() => Err(LockError::Deadlock(Contended {
                resv,
                ctx: self.as_raw(),
            })),
            e if e == EINTR.to_errno() => Err(LockError::Interrupted),
            e => Err(LockError::Other(Error::from_errno(e))),
        }
    }

    /// Marks the end of the acquire phase (`ww_acquire_done`): every further lock in this
    /// context fails with [`LockError::AfterDone`].
    pub(crate) fn mark_done(&self) {
        if !self.done.replace(true) {
            // SAFETY: The context is initialised (type invariant) and `done` was false, so
            // `ww_acquire_done` is called once.
            unsafe { ffi::dl_ww_acquire_done(self.as_raw()) };
        }
    }

    /// Finalises the context and initialises it again, for a locker that is reused.
    ///
    /// # Safety
    ///
    /// No lock is held in the context; every guard taken through it has been dropped.
    pub(crate) unsafe fn restart(self: Pin<&mut Self>) {
        // SAFETY: Only `done`, which is not structurally pinned, is replaced; `raw` stays put.
        let this = unsafe { self.get_unchecked_mut() };
        // SAFETY: The context is initialised (type invariant) and holds no lock (the caller's
        // guarantee), so it may be finalised; it is initialised again in place right away.
        unsafe {
            ffi::dl_ww_acquire_fini(this.raw.get());
            ffi::dl_ww_acquire_init(this.raw.get());
        }
        // INVARIANT: A fresh context has not been marked done.
        this.done.set(false);
    }
}

#[pinned_drop]
impl PinnedDrop for AcquireCtx {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: The context is initialised (type invariant). Every guard taken through it
        // borrowed it and is gone, so no lock is held in it: `ww_acquire_fini` may run, once.
        unsafe { ffi::dl_ww_acquire_fini(self.raw.get()) };
    }
}

/// One attempt at locking a set of reservations in an [`AcquireCtx`].
///
/// Guards taken with [`Round::lock`] borrow the round; dropping the round unlocks the object
/// that was taken on the slow path when the round began.
///
/// ```ignore
/// let round = ctx.as_mut().begin(&task, None);
/// let guard = round.lock(&task, &resv).map_err(Error::from)?;
/// ```
pub struct Round<'r> {
    ctx: &'r AcquireCtx,
    _slow: Option<ResvGuard<'r>>,
}

impl<'r> Round<'r> {
    /// Locks `resv` in this round's context.
    ///
    /// Returns [`Acquired::AlreadyHeld`] for an object this context already holds (`-EALREADY`,
    /// for example the one locked on the slow path), and [`LockError::Deadlock`] when this
    /// context must back off: drop the round and begin the next one with the [`Contended`]
    /// object.
    ///
    /// ```ignore
    /// match round.lock(&task, &resv) {
    ///     Ok(Acquired::Locked(guard)) => guards.push(guard, GFP_KERNEL)?,
    ///     Ok(Acquired::AlreadyHeld) => {}
    ///     Err(LockError::Deadlock(c)) => { contended = Some(c); continue; }
    ///     Err(e) => return Err(e.into()),
    /// }
    /// ```
    pub fn lock<'g, 'o: 'g>(
        &'g self,
        _task: &TaskCtx,
        resv: &'o Resv,
    ) -> core::result::Result<Acquired<'g>, LockError<'o>> {
        // SAFETY: The guard returned borrows this round, which borrows the context, so the lock
        // is released before the context is finalised.
        unsafe { self.ctx.lock_raw(resv, false) }
    }

    /// Like [`Round::lock`], but a signal interrupts the wait with [`LockError::Interrupted`].
    ///
    /// ```ignore
    /// let guard = round.lock_interruptible(&task, &resv)?;
    /// ```
    pub fn lock_interruptible<'g, 'o: 'g>(
        &'g self,
        _task: &TaskCtx,
        resv: &'o Resv,
    ) -> core::result::Result<Acquired<'g>, LockError<'o>> {
        // SAFETY: As in `lock`.
        unsafe { self.ctx.lock_raw(resv, true) }
    }

    /// Declares that every reservation this context will lock is locked (`ww_acquire_done`).
    ///
    /// ```ignore
    /// round.done();
    /// ```
    pub fn done(&self) {
        self.ctx.mark_done();
    }
}

/// The result of locking in a context.
pub enum Acquired<'g> {
    /// The lock was taken; the guard unlocks it.
    Locked(ResvGuard<'g>),
    /// This context already holds the lock (`-EALREADY`): a duplicate, not an error.
    AlreadyHeld,
}

/// Why a lock in a context was not taken.
pub enum LockError<'o> {
    /// `-EDEADLK`: an older context holds the object. Drop every guard of the context (drop the
    /// round) and pass this to the next [`AcquireCtx::begin`].
    Deadlock(Contended<'o>),
    /// `-EINTR`: a signal arrived during an interruptible lock.
    Interrupted,
    /// The context was already marked done with [`Round::done`].
    AfterDone,
    /// Any other error from the ww_mutex code.
    Other(Error),
}

impl From<LockError<'_>> for Error {
    fn from(e: LockError<'_>) -> Error {
        match e {
            LockError::Deadlock(_) => EDEADLK,
            LockError::Interrupted => EINTR,
            LockError::AfterDone => EINVAL,
            LockError::Other(e) => e,
        }
    }
}

/// The object a context must take first after backing off.
///
/// It does not borrow the round that produced it, so it survives dropping the round; it can only
/// be consumed by [`AcquireCtx::begin`] of the same context.
pub struct Contended<'o> {
    resv: &'o Resv,
    ctx: *mut bindings::ww_acquire_ctx,
}

impl<'o> Contended<'o> {
    /// Returns the contended reservation.
    ///
    /// ```ignore
    /// pr_info!("backing off for {:p}\n", contended.resv().as_raw());
    /// ```
    pub fn resv(&self) -> &'o Resv {
        self.resv
    }
}
