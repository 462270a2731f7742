// SPDX-License-Identifier: GPL-2.0

//! The multi-object locker: the Rust counterpart of `drm_exec`.
//!
//! A [`ResvLocker`] locks a dynamic set of reservations in one acquire context. The caller
//! describes the set with a closure, which the locker re-runs whenever a lock has to back off,
//! exactly as `drm_exec_until_all_locked()` re-runs its body: every lock is dropped, the contended
//! object is taken first with `dma_resv_lock_slow`, and the closure runs again. Everything is
//! unlocked when the locker is dropped (or [`ResvLocker::unlock_all`] is called).
//!
//! | C (`drm_exec`) | Rust |
//! |----------------|------|
//! | `drm_exec_init(&exec, flags, nr)` | `stack_pin_init!(let locker = ResvLocker::new(flags))` |
//! | `drm_exec_until_all_locked(&exec) { ... }` | `locker.as_mut().lock_all(&task, \|pass\| { ... })`, or `lock_slice` / `lock_iter` |
//! | `drm_exec_init(&exec, flags, nr)` with `nr > 0` | `ResvLocker::with_capacity(flags, nr)` |
//! | `drm_exec_lock_obj()`, `drm_exec_prepare_obj()` | `pass.lock(r)?`, `pass.prepare(r, n)?` |
//! | `drm_exec_prepare_array()` | `pass.prepare_slice(objs, n)?` |
//! | `drm_exec_unlock_obj()` | `pass.unlock(r)` in a pass, `locker.as_mut().unlock(r)` after |
//! | `drm_exec_retry_on_contention()` | the `?` on `pass.lock` |
//! | `DRM_EXEC_INTERRUPTIBLE_WAIT`, `DRM_EXEC_IGNORE_DUPLICATES` | [`LockerFlags`] |
//! | `drm_exec_fini(&exec)` | drop |
//!
//! The array of held locks grows only while a pass locks more objects than any pass before:
//! backing off keeps its capacity, so the retry loop does not allocate.
//!
//! Drop the locker before touching user memory again, not just its locks: until the acquire
//! context is finalised, lockdep counts it as a reservation lock, and a user copy under it is
//! the R1 inversion (the sample exporter's job ioctl scopes its locker for this reason; lockdep
//! reported the first version, which only called `unlock_all()`).
//!
//! Rules: R6 (one context, full backoff on `-EDEADLK`, slow path for the contended object,
//! `-EALREADY` for duplicates, `ww_acquire_done` once all are held), R7 (`!Send`), R2 (fence
//! slots are reserved with `GFP_KERNEL` under the locks, which is allowed), R4 (locking needs the
//! [`MayBlock`]).
//!
//! # Examples
//!
//! ```
//! use dmabuf_lock::{
//!     context::MayBlock,
//!     fence::FenceTimeline,
//!     locker::{LockerFlags, ResvLocker},
//!     resv::{FenceUsage, OwnedResv},
//! };
//! use pin_init::stack_pin_init;
//!
//! # let task = MayBlock::new()?;
//! # let timeline = FenceTimeline::new();
//! # let bos = [
//! #     KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?,
//! #     KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?,
//! # ];
//! let job_fence = timeline.prepare(&task)?.arm();
//! {
//!     stack_pin_init!(let locker = ResvLocker::new(LockerFlags { fence_slots: 1, ..Default::default() }));
//!     locker.as_mut().lock_all(&task, |pass| {
//!         for bo in &bos {
//!             pass.lock(bo)?;
//!         }
//!         Ok(())
//!     })?;
//!     for mut held in locker.as_mut().locked_mut() {
//!         held.add_fence(job_fence.fence(), FenceUsage::Write)?;
//!     }
//!     assert_eq!(locker.locked().len(), 2);
//! } // everything unlocked, the acquire context finalised
//! assert!(bos.iter().all(|bo| !bo.is_locked() && !bo.test_signaled(FenceUsage::Write)));
//! job_fence.signal(Ok(()));
//! assert!(bos.iter().all(|bo| bo.test_signaled(FenceUsage::Write)));
//! # Ok::<(), Error>(())
//! ```

use super::{
    acquire::{AcquireCtx, Acquired, LockError},
    context::MayBlock,
    fence::Fence,
    resv::{FenceUsage, Resv, ResvGuard},
};
use kernel::{
    error::{code::*, Error, Result},
    prelude::*,
};

/// How a [`ResvLocker`] locks.
///
/// ```
/// # use dmabuf_lock::{context::MayBlock, locker::{LockerFlags, ResvLocker}, resv::OwnedResv};
/// # use pin_init::stack_pin_init;
/// # let task = MayBlock::new()?;
/// # let a = KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?;
/// let flags = LockerFlags { interruptible: true, ignore_duplicates: true, fence_slots: 1 };
/// stack_pin_init!(let locker = ResvLocker::new(flags));
/// locker.as_mut().lock_slice(&task, &[&a, &a])?; // a duplicate is not an error
/// assert_eq!(locker.locked().len(), 1);
/// # Ok::<(), Error>(())
/// ```
#[derive(Clone, Copy, Default, Debug)]
pub struct LockerFlags {
    /// Lock with the interruptible variants: a signal ends [`ResvLocker::lock_all`] with `EINTR`.
    pub interruptible: bool,
    /// Treat locking an object twice as success instead of `EALREADY`.
    pub ignore_duplicates: bool,
    /// Fence slots that [`Pass::lock`] reserves on every object once it is locked: 0 locks
    /// only (`drm_exec_lock_obj()`), `n` is `drm_exec_prepare_obj(obj, n)`. [`Pass::prepare`]
    /// names the count per object instead.
    pub fence_slots: u32,
}

/// Counters of a [`ResvLocker`]'s work, for tests and statistics.
#[derive(Clone, Copy, Default, Debug)]
pub struct LockerStats {
    /// Times the closure ran (wrapping).
    pub passes: u32,
    /// Times a pass ended in `-EDEADLK` and every lock was dropped (wrapping).
    pub backoffs: u32,
    /// Times the array of held locks had to grow (wrapping).
    pub allocations: u32,
}

/// Why a pass of [`ResvLocker::lock_all`] stopped early: a kernel [`Error`] (the `?` operator
/// converts one), or a contention reported by [`Pass::lock`], after which the locker runs the
/// closure again. Only the locker can report a contention, so a closure cannot make it loop.
///
/// ```
/// # use dmabuf_lock::{context::MayBlock, locker::{LockerFlags, ResvLocker}, resv::OwnedResv};
/// # use pin_init::stack_pin_init;
/// # let task = MayBlock::new()?;
/// # let a = KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?;
/// # stack_pin_init!(let locker = ResvLocker::new(LockerFlags::default()));
/// fn check_job_size() -> Result {
///     Err(E2BIG)
/// }
/// let ret = locker.as_mut().lock_all(&task, |pass| {
///     pass.lock(&a)?; // a contention, passed on
///     check_job_size()?; // an error, converted by `?`
///     Ok(())
/// });
/// assert_eq!(ret, Err(E2BIG));
/// assert!(!a.is_locked()); // on error nothing stays locked
/// # Ok::<(), Error>(())
/// ```
pub struct PassError(PassErrorKind);

enum PassErrorKind {
    /// A lock of the pass returned `-EDEADLK` (or a later lock of that pass, or the closure
    /// swallowed it): every lock is dropped (at once, or at the backoff for an error kept from an
    /// earlier pass); run the pass again.
    Contended,
    /// A real error: [`ResvLocker::lock_all`] unlocks everything and returns it.
    Failed(Error),
}

impl From<Error> for PassError {
    fn from(e: Error) -> Self {
        PassError(PassErrorKind::Failed(e))
    }
}

/// Locks a dynamic set of reservations in one acquire context, with automatic backoff.
///
/// Create it pinned on the stack with `stack_pin_init!`; see the module documentation for an
/// example and the mapping from `drm_exec`.
///
/// The locker owns its acquire context and every lock taken in it; no guard ever leaves it
/// (drivers reach the locks through [`ResvLocker::locked`] and [`ResvLocker::locked_mut`]), so
/// no lock of the context can outlive the context, even when the locker is leaked.
///
/// # Invariants
///
/// Every guard in `held` and `prelocked` was taken in `ctx`, and every lock held in `ctx` has its
/// guard there. `prelocked` is the object taken on the slow path that the current pass has not
/// asked for yet; `contended`, when set, is not held.
///
/// Outside [`ResvLocker::lock_all`], `contended` and `prelocked` are `None`, and `held` is empty
/// unless `ctx` is done: only `lock_all` locks, it marks the context done when a pass succeeds,
/// empties everything at a backoff, and unlocks everything when it fails (beginning a new context
/// if it failed after a backoff); [`ResvLocker::reset`] empties everything and begins a new one. So `lock_all` starts its first pass without
/// emptying anything (`Documentation/benchmarks.md`). This is a rule of the locker, not a
/// soundness condition.
#[pin_data(PinnedDrop)]
#[must_use = "a locker unlocks everything when dropped"]
pub struct ResvLocker<'o> {
    #[pin]
    ctx: AcquireCtx,
    held: KVec<ResvGuard<'o>>,
    contended: Option<&'o Resv>,
    prelocked: Option<ResvGuard<'o>>,
    flags: LockerFlags,
    stats: LockerStats,
}

impl<'o> ResvLocker<'o> {
    /// Returns an initialiser for an empty locker. It allocates nothing until the first lock.
    ///
    /// ```
    /// # use dmabuf_lock::locker::{LockerFlags, ResvLocker};
    /// # use pin_init::stack_pin_init;
    /// stack_pin_init!(let locker = ResvLocker::new(LockerFlags::default()));
    /// assert!(locker.locked().is_empty());
    /// assert_eq!(locker.stats().allocations, 0);
    /// # Ok::<(), Error>(())
    /// ```
    pub fn new(flags: LockerFlags) -> impl PinInit<Self> {
        pin_init!(Self {
            ctx <- AcquireCtx::new(),
            held: KVec::new(),
            contended: None,
            prelocked: None,
            flags,
            stats: LockerStats::default(),
        })
    }

    /// Returns an initialiser for an empty locker with room for `count` locks, allocated now
    /// (`drm_exec_init(exec, flags, count)`): the first pass allocates nothing unless it locks
    /// more. `ENOMEM` if the array cannot be allocated.
    ///
    /// ```
    /// # use dmabuf_lock::{context::MayBlock, locker::{LockerFlags, ResvLocker}, resv::OwnedResv};
    /// # use pin_init::stack_try_pin_init;
    /// # let task = MayBlock::new()?;
    /// # let (a, b) = (KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?, KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?);
    /// stack_try_pin_init!(let locker =? ResvLocker::with_capacity(LockerFlags::default(), 16));
    /// locker.as_mut().lock_slice(&task, &[&a, &b])?;
    /// assert_eq!(locker.stats().allocations, 0); // the array was there already
    /// # Ok::<(), Error>(())
    /// ```
    pub fn with_capacity(flags: LockerFlags, count: usize) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            ctx <- AcquireCtx::new(),
            held: KVec::with_capacity(count, GFP_KERNEL)?,
            contended: None,
            prelocked: None,
            flags,
            stats: LockerStats::default(),
        })
    }

    /// Locks every reservation that `pass_fn` asks for, re-running it after each backoff until a
    /// whole pass succeeds; then marks the context done. On any other error than the `EINVAL` below
    /// nothing stays locked; if the error came after a backoff, the locker also begins a new
    /// acquire context, as [`ResvLocker::reset`] does (the kernel's context would otherwise
    /// still expect the contended lock next).
    ///
    /// As with `drm_exec`, [`ResvLocker::locked`] lists the objects in the order the final pass
    /// locked them, and the object taken on the slow path after a backoff is unlocked at the end
    /// if the final pass did not ask for it again.
    ///
    /// Once a call has succeeded, the context is done: a second call returns `EINVAL` at once,
    /// without running the closure and keeping every lock (C's `drm_exec` warns in the same
    /// case, and keeps them too). [`ResvLocker::reset`] starts over.
    ///
    /// ```
    /// # use dmabuf_lock::{context::MayBlock, locker::{LockerFlags, ResvLocker}, resv::OwnedResv};
    /// # use pin_init::stack_pin_init;
    /// # let task = MayBlock::new()?;
    /// # let (a, b) = (KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?, KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?);
    /// # stack_pin_init!(let locker = ResvLocker::new(LockerFlags::default()));
    /// locker.as_mut().lock_all(&task, |pass| {
    ///     pass.lock(&a)?;
    ///     pass.lock(&b)?;
    ///     Ok(())
    /// })?;
    /// assert!(a.is_locked() && b.is_locked());
    /// assert_eq!(locker.as_mut().lock_all(&task, |_| Ok(())), Err(EINVAL)); // done: once only
    /// # Ok::<(), Error>(())
    /// ```
    pub fn lock_all(
        self: Pin<&mut Self>,
        task: &MayBlock,
        mut pass_fn: impl FnMut(&mut Pass<'_, 'o>) -> core::result::Result<(), PassError>,
    ) -> Result {
        // SAFETY: `ctx` is the only structurally pinned field and it is not moved out of here.
        let this = unsafe { self.get_unchecked_mut() };
        if this.ctx.is_done() {
            return Err(EINVAL);
        }
        loop {
            if let Some(c) = this.contended.take() {
                if let Err(e) = this.lock_contended(c) {
                    // Interrupted on the slow path: the context still names `c` as the lock it
                    // must take next (`contending_lock`, with `CONFIG_DEBUG_MUTEXES`), and the
                    // kernel would warn when the next `lock_all` began with another. Nothing is
                    // held: a fresh context.
                    this.start_over();
                    return Err(e);
                }
            }
            this.stats.passes = this.stats.passes.wrapping_add(1);
            let result = pass_fn(&mut Pass {
                flags: this.flags,
                locker: &mut *this,
                _task: task,
            });
            // A contention that the closure swallowed (`let _ = pass.lock(..)`) still needs the
            // pass to run again: the contended object is not locked.
            let result = match result {
                Ok(()) if this.contended.is_some() => Err(PassError(PassErrorKind::Contended)),
                other => other,
            };
            match result.map_err(|e| e.0) {
                Ok(()) => {
                    // Taken on the slow path but not asked for by the final pass: not ours to
                    // keep (`drm_exec_drop_prelocked()`).
                    this.prelocked = None;
                    this.ctx.mark_done();
                    return Ok(());
                }
                Err(PassErrorKind::Contended) => {
                    this.stats.backoffs = this.stats.backoffs.wrapping_add(1);
                    // A contention met in this pass emptied both already; this is for an error
                    // the closure kept from an earlier pass and returned after locking more.
                    this.held.clear();
                    this.prelocked = None;
                }
                Err(PassErrorKind::Failed(e)) => {
                    if this.contended.is_some() {
                        // The closure swallowed a contention and then failed: as above, a
                        // fresh context.
                        this.start_over();
                    } else {
                        this.held.clear();
                        this.prelocked = None;
                    }
                    return Err(e);
                }
            }
        }
    }

    /// Locks every reservation of `objs`; the same as a [`ResvLocker::lock_all`] pass that locks
    /// them in order.
    ///
    /// ```
    /// # use dmabuf_lock::{context::MayBlock, locker::{LockerFlags, ResvLocker}, resv::OwnedResv};
    /// # use pin_init::stack_pin_init;
    /// # let task = MayBlock::new()?;
    /// # let (a, b) = (KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?, KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?);
    /// # let c = KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?;
    /// # stack_pin_init!(let locker = ResvLocker::new(LockerFlags::default()));
    /// locker.as_mut().lock_slice(&task, &[&a, &b, &c])?;
    /// assert_eq!(locker.locked().len(), 3);
    /// # Ok::<(), Error>(())
    /// ```
    pub fn lock_slice(self: Pin<&mut Self>, task: &MayBlock, objs: &[&'o Resv]) -> Result {
        self.lock_iter(task, objs.iter().copied())
    }

    /// Locks every reservation `objs` yields. The iterator is cloned for each pass, so it must
    /// yield the same objects every time (iterators over collections do).
    ///
    /// ```
    /// # use dmabuf_lock::{context::MayBlock, locker::{LockerFlags, ResvLocker}, resv::{OwnedResv, Resv}};
    /// # use pin_init::stack_pin_init;
    /// # let task = MayBlock::new()?;
    /// struct Bo {
    ///     resv: Pin<KBox<OwnedResv>>,
    /// }
    ///
    /// impl Bo {
    ///     fn resv(&self) -> &Resv {
    ///         &self.resv
    ///     }
    /// }
    ///
    /// let bos = [
    ///     Bo { resv: KBox::pin_init(OwnedResv::new(), GFP_KERNEL)? },
    ///     Bo { resv: KBox::pin_init(OwnedResv::new(), GFP_KERNEL)? },
    /// ];
    /// stack_pin_init!(let locker = ResvLocker::new(LockerFlags::default()));
    /// locker.as_mut().lock_iter(&task, bos.iter().map(|bo| bo.resv()))?;
    /// assert!(bos.iter().all(|bo| bo.resv().is_locked()));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn lock_iter<I>(self: Pin<&mut Self>, task: &MayBlock, objs: I) -> Result
    where
        I: IntoIterator<Item = &'o Resv> + Clone,
    {
        self.lock_all(task, |pass| {
            for resv in objs.clone() {
                pass.lock(resv)?;
            }
            Ok(())
        })
    }

    /// Returns the reservations held, in the order they were locked, for reading (their fences,
    /// [`ResvGuard::resv`]).
    ///
    /// ```
    /// # use dmabuf_lock::{context::MayBlock, locker::{LockerFlags, ResvLocker}, resv::{FenceUsage, OwnedResv}};
    /// # use pin_init::stack_pin_init;
    /// # let task = MayBlock::new()?;
    /// # let (a, b) = (KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?, KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?);
    /// # stack_pin_init!(let locker = ResvLocker::new(LockerFlags::default()));
    /// # locker.as_mut().lock_slice(&task, &[&a, &b])?;
    /// let mut busy = 0;
    /// for guard in locker.locked() {
    ///     busy += guard.fences(FenceUsage::Write).count();
    /// }
    /// assert_eq!(busy, 0);
    /// assert!(core::ptr::eq(locker.locked()[0].resv(), &**a)); // in the order they were locked
    /// # Ok::<(), Error>(())
    /// ```
    pub fn locked(&self) -> &[ResvGuard<'o>] {
        &self.held
    }

    /// Returns the reservations held, in the order they were locked, for adding fences.
    ///
    /// Each item borrows one lock of the locker mutably; it cannot be moved out or swapped with
    /// another guard, so the locks stay with the locker that took them in its context (R6).
    ///
    /// ```
    /// # use dmabuf_lock::{context::MayBlock, fence::FenceTimeline, locker::{LockerFlags, ResvLocker}, resv::{FenceUsage, OwnedResv}};
    /// # use pin_init::stack_pin_init;
    /// # let task = MayBlock::new()?;
    /// # let (a, b) = (KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?, KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?);
    /// # let job_fence = FenceTimeline::new().prepare(&task)?.arm();
    /// # stack_pin_init!(let locker = ResvLocker::new(LockerFlags { fence_slots: 1, ..Default::default() }));
    /// # locker.as_mut().lock_slice(&task, &[&a, &b])?;
    /// for mut held in locker.as_mut().locked_mut() {
    ///     held.add_fence(job_fence.fence(), FenceUsage::Write)?;
    /// }
    /// assert!(locker.locked().iter().all(|g| g.fences(FenceUsage::Write).count() == 1));
    /// # job_fence.signal(Ok(()));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn locked_mut(self: Pin<&mut Self>) -> impl Iterator<Item = HeldResv<'_, 'o>> {
        // SAFETY: `held` is not structurally pinned.
        let this = unsafe { self.get_unchecked_mut() };
        this.held.iter_mut().map(|guard| HeldResv { guard })
    }

    /// Unlocks `resv` and removes it from [`ResvLocker::locked`], keeping the order of the rest
    /// (`drm_exec_unlock_obj()`); returns whether it was held. Cheapest for the objects locked
    /// last, as in C. Inside a pass use [`Pass::unlock`].
    ///
    /// ```
    /// # use dmabuf_lock::{context::MayBlock, locker::{LockerFlags, ResvLocker}, resv::OwnedResv};
    /// # use pin_init::stack_pin_init;
    /// # let task = MayBlock::new()?;
    /// # let (a, b) = (KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?, KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?);
    /// # stack_pin_init!(let locker = ResvLocker::new(LockerFlags::default()));
    /// locker.as_mut().lock_slice(&task, &[&a, &b])?;
    /// assert!(locker.as_mut().unlock(&b));
    /// assert_eq!(locker.locked().len(), 1);
    /// assert!(!b.is_locked());
    /// assert!(!locker.as_mut().unlock(&b)); // not held any more
    /// # Ok::<(), Error>(())
    /// ```
    pub fn unlock(self: Pin<&mut Self>, resv: &Resv) -> bool {
        // SAFETY: `held` and `prelocked` are not structurally pinned.
        unsafe { self.get_unchecked_mut() }.unlock_one(resv)
    }

    /// Unlocks everything now, keeping the locker (and its context) for nothing further: the
    /// context is marked done once a pass succeeds.
    ///
    /// ```
    /// # use dmabuf_lock::{context::MayBlock, locker::{LockerFlags, ResvLocker}, resv::OwnedResv};
    /// # use pin_init::stack_pin_init;
    /// # let task = MayBlock::new()?;
    /// # let a = KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?;
    /// # stack_pin_init!(let locker = ResvLocker::new(LockerFlags::default()));
    /// # locker.as_mut().lock_slice(&task, &[&a])?;
    /// locker.as_mut().unlock_all();
    /// assert!(!a.is_locked());
    /// assert!(locker.locked().is_empty());
    /// # Ok::<(), Error>(())
    /// ```
    pub fn unlock_all(self: Pin<&mut Self>) {
        // SAFETY: `held` and `prelocked` are not structurally pinned.
        let this = unsafe { self.get_unchecked_mut() };
        this.held.clear();
        this.prelocked = None;
    }

    /// Unlocks everything and starts a new acquire context, keeping the array of held locks:
    /// a locker reused for job after job allocates nothing after the first (the counters are
    /// kept too).
    ///
    /// ```
    /// # use dmabuf_lock::{context::MayBlock, locker::{LockerFlags, ResvLocker}, resv::{OwnedResv, Resv}};
    /// # use pin_init::stack_pin_init;
    /// # let task = MayBlock::new()?;
    /// # let (a, b) = (KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?, KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?);
    /// # stack_pin_init!(let locker = ResvLocker::new(LockerFlags::default()));
    /// let jobs: [[&Resv; 2]; 2] = [[&a, &b], [&b, &a]];
    /// let mut allocations = 0;
    /// for job in &jobs {
    ///     locker.as_mut().reset();
    ///     locker.as_mut().lock_slice(&task, job)?;
    ///     if allocations == 0 {
    ///         allocations = locker.stats().allocations; // the first job's
    ///     }
    /// }
    /// assert_eq!(locker.stats().allocations, allocations); // none after the first job
    /// # Ok::<(), Error>(())
    /// ```
    pub fn reset(self: Pin<&mut Self>) {
        // SAFETY: `ctx` stays pinned: `start_over` reaches it only through `Pin::new_unchecked`.
        unsafe { self.get_unchecked_mut() }.start_over();
    }

    /// Returns the locker's counters.
    ///
    /// ```
    /// # use dmabuf_lock::{context::MayBlock, locker::{LockerFlags, ResvLocker}, resv::OwnedResv};
    /// # use pin_init::stack_pin_init;
    /// # let task = MayBlock::new()?;
    /// # let a = KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?;
    /// # stack_pin_init!(let locker = ResvLocker::new(LockerFlags::default()));
    /// # locker.as_mut().lock_slice(&task, &[&a])?;
    /// pr_info!("{} backoffs\n", locker.stats().backoffs);
    /// assert_eq!(locker.stats().passes, 1); // nobody contended
    /// assert_eq!(locker.stats().backoffs, 0);
    /// # Ok::<(), Error>(())
    /// ```
    pub fn stats(&self) -> LockerStats {
        self.stats
    }

    /// Unlocks everything and begins a new acquire context (a new stamp, not done).
    fn start_over(&mut self) {
        self.held.clear();
        self.contended = None;
        self.prelocked = None;
        // SAFETY: `ctx` is structurally pinned: a locker exists only pinned (`new` and
        // `with_capacity` are pin initialisers) and its methods reach this one only through
        // `Pin<&mut Self>`.
        let ctx = unsafe { Pin::new_unchecked(&mut self.ctx) };
        // SAFETY: Every lock of the context was in `held` or `prelocked`, both just emptied.
        unsafe { ctx.restart() };
    }

    fn unlock_one(&mut self, resv: &Resv) -> bool {
        if let Some(i) = self
            .held
            .iter()
            .rposition(|g| core::ptr::eq(g.resv(), resv))
        {
            self.held[i..].rotate_left(1);
            // INVARIANT: The guard leaves `held` as its drop releases the lock; the context
            // only counts the locks it holds. `contended` is untouched (it is never held).
            self.held.pop();
            true
        } else {
            // INVARIANT: As above, for the object taken on the slow path.
            self.prelocked
                .take_if(|g| core::ptr::eq(g.resv(), resv))
                .is_some()
        }
    }

    fn lock_contended(&mut self, resv: &'o Resv) -> Result {
        // SAFETY: The guard goes into `prelocked`, which is emptied before the context is
        // finalised or restarted. (The context holds nothing here, as `lock_contended` asks:
        // `held` and `prelocked` were emptied at the backoff.)
        let guard = unsafe { self.ctx.lock_contended(resv, self.flags.interruptible) }?;
        // INVARIANT: The lock's guard is kept, until the pass asks for `resv` or ends.
        self.prelocked = Some(guard);
        Ok(())
    }

    /// Keeps a lock just taken and reserves the configured fence slots on it. The array of held
    /// locks grows (with `GFP_KERNEL`, allowed under reservations by R2) only when it is full;
    /// if that fails, the guard is dropped and the lock released.
    #[inline(always)]
    fn hold(&mut self, mut guard: ResvGuard<'o>, slots: u32) -> Result {
        if slots > 0 {
            guard.reserve_fences(slots)?;
        }
        if self.held.len() == self.held.capacity() {
            self.stats.allocations = self.stats.allocations.wrapping_add(1);
        }
        self.held.push(guard, GFP_KERNEL)?;
        Ok(())
    }
}

#[pinned_drop]
impl PinnedDrop for ResvLocker<'_> {
    fn drop(self: Pin<&mut Self>) {
        // Unlock before the context is finalised (fields drop after this).
        self.unlock_all();
    }
}

/// One run of the closure given to [`ResvLocker::lock_all`].
pub struct Pass<'l, 'o> {
    /// The locker's flags, copied: a pass reads them for every object, and a copy of its own
    /// stays in registers across the lock calls, which may write to the locker's memory.
    flags: LockerFlags,
    locker: &'l mut ResvLocker<'o>,
    _task: &'l MayBlock,
}

impl<'o> Pass<'_, 'o> {
    /// Locks `resv` and reserves the configured fence slots on it.
    ///
    /// On contention every lock is dropped and a contention [`PassError`] is returned: pass it
    /// on with `?`, and the locker runs the pass again with `resv` taken first. Once a pass has
    /// met a contention, every further lock in it returns the same (R6: nothing more may be
    /// locked before the contended object). The object taken
    /// first, or one locked twice with [`LockerFlags::ignore_duplicates`], is not an error.
    ///
    /// ```
    /// # use dmabuf_lock::{context::MayBlock, locker::{LockerFlags, ResvLocker}, resv::OwnedResv};
    /// # use pin_init::stack_pin_init;
    /// # let task = MayBlock::new()?;
    /// # let resv = KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?;
    /// # stack_pin_init!(let locker = ResvLocker::new(LockerFlags::default()));
    /// locker.as_mut().lock_all(&task, |pass| {
    ///     pass.lock(&resv)?;
    ///     Ok(())
    /// })?;
    /// assert!(resv.is_locked());
    /// # Ok::<(), Error>(())
    /// ```
    #[inline(always)]
    pub fn lock(&mut self, resv: &'o Resv) -> core::result::Result<(), PassError> {
        self.lock_reserving(resv, self.flags.fence_slots)
    }

    /// Locks `resv` and reserves `num_fences` fence slots on it (`drm_exec_prepare_obj()`),
    /// whatever [`LockerFlags::fence_slots`] says, so lock-only and prepared objects mix in one
    /// pass. `num_fences` is 1 to [`super::resv::MAX_FENCE_RESERVE`]: 0, on which the C function
    /// warns, is `EINVAL` here. On a duplicate ignored with [`LockerFlags::ignore_duplicates`]
    /// the slots are reserved on the object already held, as in C.
    ///
    /// ```
    /// # use dmabuf_lock::{context::MayBlock, fence::FenceTimeline, locker::{LockerFlags, ResvLocker}, resv::{FenceUsage, OwnedResv}};
    /// # use pin_init::stack_pin_init;
    /// # let task = MayBlock::new()?;
    /// # let (vm_resv, bo) = (KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?, KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?);
    /// # let job_fence = FenceTimeline::new().prepare(&task)?.arm();
    /// # stack_pin_init!(let locker = ResvLocker::new(LockerFlags::default()));
    /// locker.as_mut().lock_all(&task, |pass| {
    ///     pass.prepare(&vm_resv, 1)?;
    ///     pass.lock(&bo)?; // with the default flags: lock only
    ///     Ok(())
    /// })?;
    /// let mut held = locker.as_mut().locked_mut();
    /// let (Some(mut vm), Some(mut bo)) = (held.next(), held.next()) else {
    ///     return Err(EINVAL);
    /// };
    /// vm.add_fence(job_fence.fence(), FenceUsage::Bookkeep)?;
    /// assert_eq!(bo.add_fence(job_fence.fence(), FenceUsage::Write), Err(ENOSPC)); // no slot
    /// # job_fence.signal(Ok(()));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn prepare(
        &mut self,
        resv: &'o Resv,
        num_fences: u32,
    ) -> core::result::Result<(), PassError> {
        if num_fences == 0 {
            return Err(EINVAL.into());
        }
        self.lock_reserving(resv, num_fences)
    }

    /// Locks every reservation of `objs` and reserves `num_fences` slots on each
    /// (`drm_exec_prepare_array()`); stops at the first that fails.
    ///
    /// ```
    /// # use dmabuf_lock::{context::MayBlock, locker::{LockerFlags, ResvLocker}, resv::OwnedResv};
    /// # use pin_init::stack_pin_init;
    /// # let task = MayBlock::new()?;
    /// # let (a, b) = (KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?, KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?);
    /// # stack_pin_init!(let locker = ResvLocker::new(LockerFlags::default()));
    /// locker.as_mut().lock_all(&task, |pass| pass.prepare_slice(&[&a, &b], 1))?;
    /// assert_eq!(locker.locked().len(), 2);
    /// # Ok::<(), Error>(())
    /// ```
    pub fn prepare_slice(
        &mut self,
        objs: &[&'o Resv],
        num_fences: u32,
    ) -> core::result::Result<(), PassError> {
        objs.iter()
            .try_for_each(|resv| self.prepare(resv, num_fences))
    }

    /// Unlocks `resv` in the middle of a pass and removes it from the locked set; returns whether
    /// it was held. The pass may lock it again (`drm_exec_unlock_obj()` inside
    /// `drm_exec_until_all_locked()`).
    ///
    /// ```
    /// # use dmabuf_lock::{context::MayBlock, locker::{LockerFlags, ResvLocker}, resv::OwnedResv};
    /// # use pin_init::stack_pin_init;
    /// # let task = MayBlock::new()?;
    /// # let a = KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?;
    /// # stack_pin_init!(let locker = ResvLocker::new(LockerFlags::default()));
    /// locker.as_mut().lock_all(&task, |pass| {
    ///     pass.lock(&a)?;
    ///     assert!(pass.unlock(&a));
    ///     assert!(!a.is_locked());
    ///     pass.lock(&a)?;
    ///     Ok(())
    /// })?;
    /// assert_eq!(locker.locked().len(), 1);
    /// # Ok::<(), Error>(())
    /// ```
    pub fn unlock(&mut self, resv: &Resv) -> bool {
        self.locker.unlock_one(resv)
    }

    #[inline(always)]
    fn lock_reserving(
        &mut self,
        resv: &'o Resv,
        slots: u32,
    ) -> core::result::Result<(), PassError> {
        let flags = self.flags;
        let l = &mut *self.locker;
        if l.contended.is_some() {
            return Err(PassError(PassErrorKind::Contended));
        }
        // A pass runs only before `lock_all` marks the context done.
        // SAFETY: The guard is stored in `held` (or dropped), which is emptied before the
        // context is finalised (`ResvLocker`'s drop) or restarted (`start_over`).
        match unsafe { l.ctx.lock(resv, flags.interruptible) } {
            Ok(Acquired::Locked(guard)) => Ok(l.hold(guard, slots)?),
            Ok(Acquired::AlreadyHeld) => {
                let prelocked = l.prelocked.take_if(|g| core::ptr::eq(g.resv(), resv));
                if let Some(guard) = prelocked {
                    // Taken on the slow path; it joins the list in the order of this pass.
                    Ok(l.hold(guard, slots)?)
                } else if flags.ignore_duplicates {
                    let held = l.held.iter_mut().find(|g| core::ptr::eq(g.resv(), resv));
                    if let (Some(guard), true) = (held, slots > 0) {
                        guard.reserve_fences(slots)?;
                    }
                    Ok(())
                } else {
                    Err(EALREADY.into())
                }
            }
            Err(LockError::Deadlock(contended)) => {
                l.held.clear();
                l.prelocked = None;
                l.contended = Some(contended);
                Err(PassError(PassErrorKind::Contended))
            }
            Err(e) => Err(Error::from(e).into()),
        }
    }
}

/// One lock of a [`ResvLocker`], borrowed mutably to add fences; see
/// [`ResvLocker::locked_mut`]. Dereferences to the [`ResvGuard`] for reading.
///
/// ```
/// # use dmabuf_lock::{context::MayBlock, fence::FenceTimeline, locker::{LockerFlags, ResvLocker}, resv::{FenceUsage, OwnedResv}};
/// # use pin_init::stack_pin_init;
/// # let task = MayBlock::new()?;
/// # let a = KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?;
/// # let fence = FenceTimeline::new().prepare(&task)?.arm();
/// # stack_pin_init!(let locker = ResvLocker::new(LockerFlags { fence_slots: 1, ..Default::default() }));
/// # locker.as_mut().lock_slice(&task, &[&a])?;
/// for mut held in locker.as_mut().locked_mut() {
///     held.add_fence(fence.fence(), FenceUsage::Write)?;
/// }
/// assert_eq!(locker.locked()[0].fences(FenceUsage::Write).count(), 1); // read through the guard
/// # fence.signal(Ok(()));
/// # Ok::<(), Error>(())
/// ```
pub struct HeldResv<'l, 'o> {
    guard: &'l mut ResvGuard<'o>,
}

impl<'o> HeldResv<'_, 'o> {
    /// Makes room for `count` more fences; see [`ResvGuard::reserve_fences`].
    ///
    /// ```
    /// # use dmabuf_lock::{context::MayBlock, fence::FenceTimeline, locker::{LockerFlags, ResvLocker}, resv::{FenceUsage, OwnedResv}};
    /// # use pin_init::stack_pin_init;
    /// # let task = MayBlock::new()?;
    /// # let a = KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?;
    /// # let timeline = FenceTimeline::new();
    /// # let (read, write) = (timeline.prepare(&task)?.arm(), timeline.prepare(&task)?.arm());
    /// # stack_pin_init!(let locker = ResvLocker::new(LockerFlags::default()));
    /// # locker.as_mut().lock_slice(&task, &[&a])?;
    /// # let mut all = locker.as_mut().locked_mut();
    /// # let Some(mut held) = all.next() else { return Err(EINVAL) };
    /// held.reserve_fences(2)?;
    /// held.add_fence(read.fence(), FenceUsage::Read)?;
    /// held.add_fence(write.fence(), FenceUsage::Write)?;
    /// assert_eq!(held.fences(FenceUsage::Read).count(), 2);
    /// # read.signal(Ok(()));
    /// # write.signal(Ok(()));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn reserve_fences(&mut self, count: u32) -> Result {
        self.guard.reserve_fences(count)
    }

    /// Adds `fence` with `usage`; see [`ResvGuard::add_fence`].
    ///
    /// ```
    /// # use dmabuf_lock::{context::MayBlock, fence::FenceTimeline, locker::{LockerFlags, ResvLocker}, resv::{FenceUsage, OwnedResv}};
    /// # use pin_init::stack_pin_init;
    /// # let task = MayBlock::new()?;
    /// # let a = KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?;
    /// # let fence = FenceTimeline::new().prepare(&task)?.arm();
    /// # stack_pin_init!(let locker = ResvLocker::new(LockerFlags::default()));
    /// # locker.as_mut().lock_slice(&task, &[&a])?;
    /// # let mut all = locker.as_mut().locked_mut();
    /// # let Some(mut held) = all.next() else { return Err(EINVAL) };
    /// assert_eq!(held.add_fence(fence.fence(), FenceUsage::Write), Err(ENOSPC)); // reserve first
    /// held.reserve_fences(1)?;
    /// held.add_fence(fence.fence(), FenceUsage::Write)?;
    /// # fence.signal(Ok(()));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn add_fence(&mut self, fence: &Fence, usage: FenceUsage) -> Result {
        self.guard.add_fence(fence, usage)
    }
}

impl<'o> core::ops::Deref for HeldResv<'_, 'o> {
    type Target = ResvGuard<'o>;

    fn deref(&self) -> &ResvGuard<'o> {
        self.guard
    }
}
