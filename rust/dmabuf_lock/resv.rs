// SPDX-License-Identifier: GPL-2.0

//! Reservation objects (`struct dma_resv`) and their single-object lock.
//!
//! A reservation is the `ww_mutex` plus fence container that every user of a shared buffer
//! synchronises on. [`Resv`] is the view of any initialised reservation, wherever it lives;
//! [`OwnedResv`] owns one. Locking a single reservation needs no acquire context and returns a
//! [`ResvGuard`]; the guard is the only way to reach what needs the lock.
//!
//! Rules: R4 (locking and waiting need a [`MayBlock`], which signalling sections hold),
//! R3 (waiting for fences is allowed with or without the lock), R2 (a guard may be held across `GFP_KERNEL` allocations; reclaim paths must use
//! [`Resv::try_lock`]), R7 (guards are `!Send`: the task that locks unlocks), R10 (any dma-buf's
//! reservation can be locked through [`Resv::from_raw`]).

use super::{
    context::MayBlock,
    fence::{jiffies_timeout, wait_result, Fence},
    ffi,
};
use core::{marker::PhantomData, ptr};
use kernel::{
    bindings,
    error::{
        code::{EINVAL, ENOSPC},
        to_result, Result,
    },
    prelude::*,
    time::Msecs,
    types::{NotThreadSafe, Opaque},
};

mod cell;
mod unlocked;

pub(super) use cell::HoldsResvPrivate;
pub use cell::{HoldsResv, ResvCell, ResvHeld};
pub use unlocked::{FenceSnapshot, UnlockedFence, UnlockedFences};

/// The most fence slots one [`ResvGuard::reserve_fences`] call may ask for.
pub const MAX_FENCE_RESERVE: u32 = 1 << 16;

/// How a fence in a reservation is used; each usage includes the ones before it when queried.
///
/// The order is C's (`enum dma_resv_usage`): `Kernel < Write < Read < Bookkeep`, and a query for
/// one usage returns the fences of every usage that compares less or equal.
///
/// ```
/// # use dmabuf_lock::{context::MayBlock, fence::FenceTimeline, resv::{FenceUsage, OwnedResv}};
/// # let task = MayBlock::new()?;
/// # let resv = KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?;
/// # let fence = FenceTimeline::new().prepare(&task)?.arm();
/// let mut guard = resv.lock(&task);
/// guard.reserve_fences(1)?;
/// guard.add_fence(fence.fence(), FenceUsage::Write)?;
/// assert!(!resv.test_signaled(FenceUsage::Read)); // Read includes Write
/// assert!(resv.test_signaled(FenceUsage::Kernel)); // Kernel does not
/// assert!(FenceUsage::Write < FenceUsage::Read);
/// # drop(guard);
/// # fence.signal(Ok(()));
/// # Ok::<(), Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum FenceUsage {
    /// Kernel-internal work (moves, clears): every user waits for it.
    Kernel,
    /// Implicit-sync writes.
    Write,
    /// Implicit-sync reads.
    Read,
    /// Bookkeeping only: no implicit synchronisation.
    Bookkeep,
}

impl FenceUsage {
    pub(super) fn as_raw(self) -> bindings::dma_resv_usage {
        match self {
            Self::Kernel => bindings::dma_resv_usage_DMA_RESV_USAGE_KERNEL,
            Self::Write => bindings::dma_resv_usage_DMA_RESV_USAGE_WRITE,
            Self::Read => bindings::dma_resv_usage_DMA_RESV_USAGE_READ,
            Self::Bookkeep => bindings::dma_resv_usage_DMA_RESV_USAGE_BOOKKEEP,
        }
    }

    /// The usage to wait for before an access (`dma_resv_usage_rw()`): a write waits for every
    /// implicit-sync reader and writer ([`FenceUsage::Read`]), a read only for the writers
    /// ([`FenceUsage::Write`]).
    ///
    /// ```
    /// # use dmabuf_lock::{context::MayBlock, resv::{FenceUsage, OwnedResv}};
    /// # let task = MayBlock::new()?;
    /// # let resv = KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?;
    /// assert_eq!(FenceUsage::for_access(true), FenceUsage::Read);
    /// assert_eq!(FenceUsage::for_access(false), FenceUsage::Write);
    /// // Nothing is pending, so a writer does not wait.
    /// assert_eq!(resv.wait(&task, FenceUsage::for_access(true), true, 100), Ok(true));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn for_access(write: bool) -> Self {
        if write {
            Self::Read
        } else {
            Self::Write
        }
    }

    /// The usage C reports for a fence (`dma_resv_iter_usage()`). C stores only the four values
    /// of the enum; anything else would be a corrupted list and is read as the weakest usage.
    fn from_raw(raw: bindings::dma_resv_usage) -> Self {
        match raw {
            bindings::dma_resv_usage_DMA_RESV_USAGE_KERNEL => Self::Kernel,
            bindings::dma_resv_usage_DMA_RESV_USAGE_WRITE => Self::Write,
            bindings::dma_resv_usage_DMA_RESV_USAGE_READ => Self::Read,
            _ => Self::Bookkeep,
        }
    }
}

/// A reservation object: the lock and fences shared by every user of a buffer.
///
/// `Resv` is only ever used by reference: borrowed from a reservation that C code owns (a
/// `dma_buf`'s `resv`, a GEM object's) with [`Resv::from_raw`], or from an [`OwnedResv`].
///
/// # Invariants
///
/// The wrapped `dma_resv` is initialised, and stays initialised and in place, for as long as any
/// reference to the `Resv` exists.
///
/// # Examples
///
/// Locking a reservation owned elsewhere:
///
/// ```
/// # use dmabuf_lock::{context::MayBlock, resv::{OwnedResv, Resv}};
/// # let task = MayBlock::new()?;
/// # let owner = KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?;
/// // A reservation pointer from C: a `dma_buf`'s `resv`, a GEM object's (here, `owner`'s).
/// let raw: *mut kernel::bindings::dma_resv = owner.as_raw();
/// // SAFETY: `raw` points to an initialised reservation, which `owner` keeps alive and in place
/// // for as long as `resv` is used.
/// let resv = unsafe { Resv::from_raw(raw) };
/// let mut guard = resv.lock(&task);
/// guard.reserve_fences(1)?;
/// assert!(owner.is_locked());
/// drop(guard);
/// assert!(!owner.is_locked());
/// # Ok::<(), Error>(())
/// ```
#[repr(transparent)]
pub struct Resv(Opaque<bindings::dma_resv>);

// SAFETY: A `dma_resv` is made to be shared between tasks: its lock is a `ww_mutex` and its
// fence list is read under RCU and written under that lock.
unsafe impl Send for Resv {}

// SAFETY: Every method taking `&Resv` either takes the lock or only reads under RCU, so shared
// references may be used from any task.
unsafe impl Sync for Resv {}

impl Resv {
    /// Borrows the reservation at `ptr`.
    ///
    /// # Safety
    ///
    /// `ptr` points to a `dma_resv` that was initialised with `dma_resv_init` and that stays
    /// initialised and in place for `'a`.
    ///
    /// A guard of it that is leaked keeps it locked past `'a`; when its C owner then frees it
    /// on another task with lockdep on, lockdep keeps a pointer to it (see "Known limits" in
    /// `Documentation/soundness.md`).
    pub unsafe fn from_raw<'a>(ptr: *mut bindings::dma_resv) -> &'a Self {
        // INVARIANT: The caller guarantees that `ptr` is initialised and stays so for `'a`.
        // SAFETY: `Resv` is `repr(transparent)` over `Opaque<dma_resv>`, which has the layout of
        // `dma_resv`, and the caller guarantees that `ptr` is valid for `'a`.
        unsafe { &*ptr.cast::<Self>() }
    }

    /// Returns the raw `struct dma_resv` pointer, for C APIs that take one.
    pub fn as_raw(&self) -> *mut bindings::dma_resv {
        self.0.get()
    }

    /// Returns the reservation's `ww_mutex` (`&obj->lock`). The lock paths call the exported
    /// `ww_mutex_*` functions on it directly, as the `dma_resv_lock*()` inlines do, so a Rust
    /// lock costs what a C one does.
    pub(super) fn ww_mutex(&self) -> *mut bindings::ww_mutex {
        // SAFETY: `as_raw` points to an initialised `dma_resv` (type invariant); this only
        // computes a field address.
        unsafe { &raw mut (*self.as_raw()).lock }
    }

    /// Unlocks the reservation, as `dma_resv_unlock()` does.
    ///
    /// # Safety
    ///
    /// The current task holds the lock, and nothing else will unlock it.
    pub(super) unsafe fn unlock_raw(&self) {
        #[cfg(CONFIG_DEBUG_MUTEXES)]
        // SAFETY: The caller holds the lock, as `dma_resv_reset_max_fences` requires.
        unsafe {
            bindings::dma_resv_reset_max_fences(self.as_raw())
        };
        // SAFETY: The caller holds the lock.
        unsafe { bindings::ww_mutex_unlock(self.ww_mutex()) };
    }

    /// Locks the reservation, sleeping until it is free. The [`MayBlock`] proves the caller is
    /// outside any fence-signalling critical section (R4).
    ///
    /// Without an acquire context a single lock cannot be asked to back off, so this cannot
    /// fail. To lock several reservations use [`super::locker::ResvLocker`] (R6).
    ///
    /// ```
    /// # use dmabuf_lock::{context::MayBlock, resv::OwnedResv};
    /// # let task = MayBlock::new()?;
    /// # let resv = KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?;
    /// let guard = resv.lock(&task);
    /// assert!(resv.is_locked());
    /// drop(guard);
    /// assert!(!resv.is_locked());
    /// # Ok::<(), Error>(())
    /// ```
    pub fn lock(&self, _task: &MayBlock) -> ResvGuard<'_> {
        // SAFETY: The mutex is initialised (type invariant). With a NULL context,
        // `ww_mutex_lock` sleeps until it owns the lock and returns 0.
        let ret = unsafe { bindings::ww_mutex_lock(self.ww_mutex(), ptr::null_mut()) };
        debug_assert_eq!(ret, 0);
        // SAFETY: The lock was just taken by the current task.
        unsafe { ResvGuard::new(self) }
    }

    /// Locks the reservation, or returns `EINTR` if a signal arrives first.
    ///
    /// ```
    /// # use dmabuf_lock::{context::MayBlock, resv::OwnedResv};
    /// # let task = MayBlock::new()?;
    /// # let resv = KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?;
    /// let guard = resv.lock_interruptible(&task)?;
    /// assert!(guard.resv().is_locked());
    /// # Ok::<(), Error>(())
    /// ```
    pub fn lock_interruptible(&self, _task: &MayBlock) -> Result<ResvGuard<'_>> {
        // SAFETY: The mutex is initialised (type invariant); with a NULL context the call
        // returns 0 once locked or `-EINTR`.
        to_result(unsafe {
            bindings::ww_mutex_lock_interruptible(self.ww_mutex(), ptr::null_mut())
        })?;
        // SAFETY: The call above returned 0, so the current task holds the lock.
        Ok(unsafe { ResvGuard::new(self) })
    }

    /// Locks the reservation if it is free, without sleeping.
    ///
    /// This is the only way reclaim paths (shrinkers, R2) may lock a reservation. Signalling
    /// sections may not take reservations at all (R4), so it needs a [`MayBlock`] too.
    ///
    /// ```
    /// # use dmabuf_lock::{context::MayBlock, resv::OwnedResv};
    /// # let task = MayBlock::new()?;
    /// # let resv = KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?;
    /// let mut evicted = false;
    /// if let Some(_guard) = resv.try_lock(&task) {
    ///     evicted = true; // evict the buffer
    /// }
    /// assert!(evicted);
    /// let _held = resv.lock(&task);
    /// assert!(resv.try_lock(&task).is_none()); // held: it does not wait
    /// # Ok::<(), Error>(())
    /// ```
    pub fn try_lock(&self, _task: &MayBlock) -> Option<ResvGuard<'_>> {
        self.try_lock_nosleep()
    }

    /// The trylock itself, for callers that prove otherwise that they may take a reservation
    /// (a reclaim scope).
    pub(super) fn try_lock_nosleep(&self) -> Option<ResvGuard<'_>> {
        // SAFETY: The mutex is initialised (type invariant); no context, as `dma_resv_trylock`.
        if unsafe { bindings::ww_mutex_trylock(self.ww_mutex(), ptr::null_mut()) } != 0 {
            // SAFETY: The trylock succeeded, so the current task holds the lock.
            Some(unsafe { ResvGuard::new(self) })
        } else {
            None
        }
    }

    /// Returns whether any task or acquire context holds the lock right now.
    ///
    /// Only a snapshot: use it for assertions and statistics, never to decide whether to lock.
    ///
    /// ```
    /// # use dmabuf_lock::{context::MayBlock, resv::OwnedResv};
    /// # let task = MayBlock::new()?;
    /// # let resv = KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?;
    /// assert!(!resv.is_locked());
    /// let _guard = resv.lock(&task);
    /// assert!(resv.is_locked());
    /// # Ok::<(), Error>(())
    /// ```
    pub fn is_locked(&self) -> bool {
        // SAFETY: `as_raw` is initialised by the type invariant.
        unsafe { ffi::dl_dma_resv_is_locked(self.as_raw()) }
    }

    /// Returns whether every fence of `usage` (and of the usages it includes) has signalled.
    /// Needs no lock: the fence list is read under RCU.
    ///
    /// ```
    /// # use dmabuf_lock::{context::MayBlock, fence::FenceTimeline, resv::{FenceUsage, OwnedResv}};
    /// # let task = MayBlock::new()?;
    /// # let resv = KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?;
    /// # let job = FenceTimeline::new().prepare(&task)?.arm();
    /// assert!(resv.test_signaled(FenceUsage::Write)); // no fences at all
    /// let mut guard = resv.lock(&task);
    /// guard.reserve_fences(1)?;
    /// guard.add_fence(job.fence(), FenceUsage::Write)?;
    /// drop(guard);
    /// assert!(!resv.test_signaled(FenceUsage::Write)); // a writer is pending
    /// job.signal(Ok(()));
    /// assert!(resv.test_signaled(FenceUsage::Write));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn test_signaled(&self, usage: FenceUsage) -> bool {
        // SAFETY: `as_raw` is initialised by the type invariant.
        unsafe { bindings::dma_resv_test_signaled(self.as_raw(), usage.as_raw()) }
    }

    /// Waits up to `timeout_ms` for every fence of `usage`: `Ok(true)` once all signalled,
    /// `Ok(false)` on time-out, `EINTR` if `interruptible` and a signal arrived. Allowed with or
    /// without the lock (R3), never inside a signalling section (R4).
    ///
    /// ```
    /// # use dmabuf_lock::{context::MayBlock, fence::FenceTimeline, resv::{FenceUsage, OwnedResv}};
    /// # let task = MayBlock::new()?;
    /// # let resv = KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?;
    /// # let job = FenceTimeline::new().prepare(&task)?.arm();
    /// # let mut guard = resv.lock(&task);
    /// # guard.reserve_fences(1)?;
    /// # guard.add_fence(job.fence(), FenceUsage::Write)?;
    /// # drop(guard);
    /// assert_eq!(resv.wait(&task, FenceUsage::Write, true, 10), Ok(false)); // a writer is pending
    /// job.signal(Ok(()));
    /// if !resv.wait(&task, FenceUsage::Write, true, 100)? {
    ///     return Err(ETIMEDOUT);
    /// }
    /// # Ok::<(), Error>(())
    /// ```
    pub fn wait(
        &self,
        _task: &MayBlock,
        usage: FenceUsage,
        interruptible: bool,
        timeout_ms: Msecs,
    ) -> Result<bool> {
        let timeout = jiffies_timeout(timeout_ms).unsigned_abs();
        // SAFETY: `as_raw` is initialised by the type invariant.
        let ret = unsafe {
            bindings::dma_resv_wait_timeout(self.as_raw(), usage.as_raw(), interruptible, timeout)
        };
        wait_result(ret)
    }
}

/// A reservation object owned by Rust code: `dma_resv_init` on creation, `dma_resv_fini` on
/// drop. Dereferences to [`Resv`].
///
/// # Invariants
///
/// `raw` is initialised by `dma_resv_init` and pinned until `drop` finalises it; when it is
/// locked at drop time, a guard was leaked, and lockdep is switched off before it is finalised.
///
/// # Examples
///
/// ```
/// use dmabuf_lock::{context::MayBlock, resv::OwnedResv};
///
/// let task = MayBlock::new()?;
/// let resv = KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?;
/// let guard = resv.lock(&task);
/// assert!(resv.is_locked());
/// drop(guard);
/// // Dropping `resv` finalises the reservation (`dma_resv_fini`).
/// # Ok::<(), Error>(())
/// ```
#[pin_data(PinnedDrop)]
pub struct OwnedResv {
    #[pin]
    raw: Opaque<bindings::dma_resv>,
}

// SAFETY: As for `Resv`: the reservation is made to be shared between tasks, and `OwnedResv` adds
// nothing but ownership.
unsafe impl Send for OwnedResv {}

// SAFETY: As for `Resv`.
unsafe impl Sync for OwnedResv {}

impl OwnedResv {
    /// Returns an initialiser for a new, unlocked reservation with no fences.
    pub fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            // SAFETY: `dma_resv_init` initialises the `dma_resv` it is given in place; the slot
            // is pinned, so it stays there until `dma_resv_fini` in `drop`.
            raw <- Opaque::ffi_init(|slot| unsafe { bindings::dma_resv_init(slot) }),
        })
    }
}

#[pinned_drop]
impl PinnedDrop for OwnedResv {
    fn drop(self: Pin<&mut Self>) {
        // Every guard borrows `self`, so none is alive here. If the reservation is still locked,
        // a guard (or a locker holding it) was leaked, and lockdep's table of held locks of the
        // task that leaked it points into this memory, which is about to be freed or to go out
        // of scope: warn and switch lockdep off, so that it never reads that entry again.
        if self.is_locked() {
            super::lockdep::held_lock_freed(
                c"dmabuf_lock: dma_resv freed while a leaked guard holds it; lockdep switched off",
            );
        }
        // SAFETY: The reservation was initialised in `new`, and every reference to it borrows
        // `self`, so nothing else uses it any more.
        unsafe { bindings::dma_resv_fini(self.raw.get()) };
    }
}

impl core::ops::Deref for OwnedResv {
    type Target = Resv;

    fn deref(&self) -> &Resv {
        // SAFETY: `raw` was initialised in `new`, is pinned, and is only finalised in `drop`,
        // after every borrow of `self` has ended.
        unsafe { Resv::from_raw(self.raw.get()) }
    }
}

/// Proof that the current task holds a reservation's lock; unlocks it on drop.
///
/// A guard is `!Send` (R7): the task that locked is the task that unlocks. Guards taken in an
/// acquire context never leave the [`super::locker::ResvLocker`] that owns the context (R6).
///
/// Reading the fences ([`ResvGuard::fences`]) borrows the guard, and changing them
/// ([`ResvGuard::reserve_fences`], [`ResvGuard::add_fence`]) needs it mutably, because both free
/// fences and fence lists that a reader could still hold: the borrow checker keeps them apart.
///
/// Leaking a guard (`mem::forget`) leaves the reservation locked (a deadlock, not undefined
/// behaviour); an [`OwnedResv`] dropped while locked warns and switches lockdep off (see
/// `Documentation/soundness.md`).
///
/// # Invariants
///
/// The current task holds the lock of `resv` for the lifetime of the guard. `free_slots` fence
/// slots were reserved under this lock and not yet used.
///
/// # Examples
///
/// ```
/// # use dmabuf_lock::{context::MayBlock, fence::FenceTimeline, resv::{FenceUsage, OwnedResv}};
/// # let task = MayBlock::new()?;
/// # let resv = KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?;
/// # let timeline = FenceTimeline::new();
/// # let (write, read) = (timeline.prepare(&task)?.arm(), timeline.prepare(&task)?.arm());
/// let mut guard = resv.lock(&task);
/// guard.reserve_fences(2)?;
/// guard.add_fence(write.fence(), FenceUsage::Write)?;
/// guard.add_fence(read.fence(), FenceUsage::Read)?;
/// assert_eq!(guard.fences(FenceUsage::Read).count(), 2);
/// # drop(guard);
/// # write.signal(Ok(()));
/// # read.signal(Ok(()));
/// # Ok::<(), Error>(())
/// ```
#[must_use = "the reservation is unlocked when the guard is dropped"]
pub struct ResvGuard<'a> {
    resv: &'a Resv,
    free_slots: u32,
    _not_send: NotThreadSafe,
}

impl<'a> ResvGuard<'a> {
    /// Wraps a lock the current task holds.
    ///
    /// # Safety
    ///
    /// The current task holds the lock of `resv`, and the new guard becomes responsible for
    /// unlocking it.
    pub(super) unsafe fn new(resv: &'a Resv) -> Self {
        // INVARIANT: The caller guarantees the current task holds the lock.
        Self {
            resv,
            free_slots: 0,
            _not_send: NotThreadSafe,
        }
    }

    /// Returns the locked reservation.
    ///
    /// ```
    /// # use dmabuf_lock::{context::MayBlock, resv::OwnedResv};
    /// # let task = MayBlock::new()?;
    /// # let resv = KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?;
    /// let guard = resv.lock(&task);
    /// assert!(guard.resv().is_locked());
    /// assert!(core::ptr::eq(guard.resv(), &**resv));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn resv(&self) -> &'a Resv {
        self.resv
    }

    /// Makes room for `count` more fences, allocating with `GFP_KERNEL` (allowed under the lock,
    /// R2). Must precede adding fences.
    ///
    /// `count` is 1 to [`MAX_FENCE_RESERVE`]; anything else is `EINVAL` before the C function
    /// sees it (it warns on 0, and its slot arithmetic is 32-bit).
    ///
    /// ```
    /// # use dmabuf_lock::{context::MayBlock, resv::{OwnedResv, MAX_FENCE_RESERVE}};
    /// # let task = MayBlock::new()?;
    /// # let resv = KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?;
    /// # let mut guard = resv.lock(&task);
    /// guard.reserve_fences(1)?;
    /// assert_eq!(guard.reserve_fences(0), Err(EINVAL));
    /// assert_eq!(guard.reserve_fences(MAX_FENCE_RESERVE + 1), Err(EINVAL));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn reserve_fences(&mut self, count: u32) -> Result {
        if count == 0 || count > MAX_FENCE_RESERVE {
            return Err(EINVAL);
        }
        // SAFETY: The reservation is initialised and locked by the current task (type
        // invariant), which is what `dma_resv_reserve_fences` requires; `count` is in range.
        // The `&mut self` keeps every borrow of the fence list (`fences`) out of this call, which
        // may free the old list and put signalled fences.
        to_result(unsafe { bindings::dma_resv_reserve_fences(self.resv.as_raw(), count) })?;
        // INVARIANT: At least `count` slots are free now.
        self.free_slots = self.free_slots.max(count);
        Ok(())
    }

    /// Adds `fence` with `usage`, as `dma_resv_add_fence()` does.
    ///
    /// Like C, the fence replaces in place, without using a slot, an earlier fence of its own
    /// context whose usage is the same or weaker ([`FenceUsage`]'s order) or any fence that has
    /// signalled; otherwise it takes a slot reserved with [`ResvGuard::reserve_fences`] under
    /// this guard, and `ENOSPC` says none is left (where the C function would write past its
    /// array and hit its `BUG_ON`). The guard decides which case applies by looking at the list
    /// the way C will; a fence that signals in between only turns a slot into a replacement, so
    /// the count never promises a slot that is not there.
    ///
    /// A container fence (`dma_fence_array`, `dma_fence_chain`, as a merged `sync_file` gives)
    /// is `EINVAL`: the C function warns on one; add the fences it holds one by one.
    ///
    /// ```
    /// # use dmabuf_lock::{context::MayBlock, fence::FenceTimeline, resv::{FenceUsage, OwnedResv}};
    /// # let task = MayBlock::new()?;
    /// # let resv = KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?;
    /// # let job_fence = FenceTimeline::new().prepare(&task)?.arm();
    /// # let mut guard = resv.lock(&task);
    /// assert_eq!(guard.add_fence(job_fence.fence(), FenceUsage::Write), Err(ENOSPC)); // no slot yet
    /// guard.reserve_fences(1)?;
    /// guard.add_fence(job_fence.fence(), FenceUsage::Write)?;
    /// assert_eq!(guard.fences(FenceUsage::Write).count(), 1);
    /// # drop(guard);
    /// # job_fence.signal(Ok(()));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn add_fence(&mut self, fence: &Fence, usage: FenceUsage) -> Result {
        // SAFETY: The fence is initialised (type invariant of `Fence`); this reads its ops.
        if unsafe { ffi::dl_dma_fence_is_container(fence.as_raw()) } {
            return Err(EINVAL);
        }
        let replaces = self
            .fence_entries(FenceUsage::Bookkeep)
            .any(|(old, old_usage)| {
                (old.context() == fence.context()
                    && old_usage >= usage
                    && fence.is_later_or_same(old))
                    || old.is_signaled()
            });
        if !replaces && self.free_slots == 0 {
            return Err(ENOSPC);
        }
        // SAFETY: The reservation is locked by the current task, so its list is the one just
        // walked (readers under RCU never write it; the walk's borrow ended). Either C's loop
        // will find an entry to replace in place: the condition above is C's, over the same
        // entries in the same order, built from values fixed at a fence's initialisation
        // (context, seqno, `DMA_FENCE_FLAG_SEQNO64_BIT`) and from the signalled bit, which only
        // ever gets set, so it can only turn from false to true in between. Or a slot is free:
        // `free_slots` were reserved under this lock (type invariant), so the list is not NULL
        // and `num_fences + free_slots <= max_fences`. `dma_resv_add_fence` takes its own
        // reference on `fence`; the fence it may replace and put is not borrowed from this guard
        // (`&mut self`).
        unsafe { bindings::dma_resv_add_fence(self.resv.as_raw(), fence.as_raw(), usage.as_raw()) };
        if !replaces {
            // INVARIANT: One reserved slot was used.
            self.free_slots -= 1;
        }
        // INVARIANT: Otherwise an entry was replaced: the number of fences did not change.
        Ok(())
    }

    /// Replaces every fence of fence context `context` with `replacement`, used as `usage`
    /// (`dma_resv_replace_fences()`); uses no slot. Only correct when the work those fences
    /// stand for no longer touches the buffer, e.g. a preemption fence replaced by the
    /// page-table update that follows it.
    ///
    /// A container fence is `EINVAL`, as in [`ResvGuard::add_fence`] (stricter than C, which
    /// does not check here): a container in the list would end up inside the next
    /// [`Resv::get_singleton`] array, and containers nested that way recurse once per level when
    /// they signal or are freed, until the stack overflows.
    ///
    /// ```
    /// # use dmabuf_lock::{context::MayBlock, fence::FenceTimeline, resv::{FenceUsage, OwnedResv}};
    /// # let task = MayBlock::new()?;
    /// # let resv = KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?;
    /// # let timeline = FenceTimeline::new();
    /// # let (preempt, update) = (timeline.prepare(&task)?.arm(), timeline.prepare(&task)?.arm());
    /// # let mut guard = resv.lock(&task);
    /// # guard.reserve_fences(1)?;
    /// # guard.add_fence(preempt.fence(), FenceUsage::Bookkeep)?;
    /// let old_ctx = preempt.fence().context();
    /// guard.replace_fences(old_ctx, update.fence(), FenceUsage::Bookkeep)?;
    /// assert_eq!(guard.fences(FenceUsage::Bookkeep).count(), 1);
    /// assert!(guard.fences(FenceUsage::Bookkeep).all(|f| f.context() == update.fence().context()));
    /// # drop(guard);
    /// # preempt.signal(Ok(()));
    /// # update.signal(Ok(()));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn replace_fences(
        &mut self,
        context: u64,
        replacement: &Fence,
        usage: FenceUsage,
    ) -> Result {
        // SAFETY: The fence is initialised (type invariant of `Fence`); this reads its ops.
        if unsafe { ffi::dl_dma_fence_is_container(replacement.as_raw()) } {
            return Err(EINVAL);
        }
        // SAFETY: The reservation is locked by the current task (type invariant);
        // `dma_resv_replace_fences` takes its own references on `replacement` and puts the
        // fences it replaces, none of which is borrowed from this guard (`&mut self`).
        unsafe {
            bindings::dma_resv_replace_fences(
                self.resv.as_raw(),
                context,
                replacement.as_raw(),
                usage.as_raw(),
            )
        };
        // INVARIANT: Entries were overwritten in place: the number of fences, and so the free
        // slots, did not change.
        Ok(())
    }

    /// Iterates over the fences of `usage` and the usages it includes, under the lock.
    ///
    /// ```
    /// # use dmabuf_lock::{context::MayBlock, fence::FenceTimeline, resv::{FenceUsage, OwnedResv}};
    /// # let task = MayBlock::new()?;
    /// # let resv = KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?;
    /// # let job = FenceTimeline::new().prepare(&task)?.arm();
    /// # let mut guard = resv.lock(&task);
    /// # guard.reserve_fences(1)?;
    /// # guard.add_fence(job.fence(), FenceUsage::Write)?;
    /// let writers = guard.fences(FenceUsage::Write).count();
    /// assert_eq!(writers, 1);
    /// assert_eq!(guard.fences(FenceUsage::Kernel).count(), 0);
    /// # drop(guard);
    /// # job.signal(Ok(()));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn fences(&self, usage: FenceUsage) -> Fences<'_> {
        Fences(self.fence_entries(usage))
    }

    /// Iterates over the fences of `usage` and the usages it includes, under the lock, each with
    /// the usage it was added with (`dma_resv_iter_usage()`).
    ///
    /// ```
    /// # use dmabuf_lock::{context::MayBlock, fence::FenceTimeline, resv::{FenceUsage, OwnedResv}};
    /// # let task = MayBlock::new()?;
    /// # let resv = KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?;
    /// # let timeline = FenceTimeline::new();
    /// # let (write, read) = (timeline.prepare(&task)?.arm(), timeline.prepare(&task)?.arm());
    /// # let mut guard = resv.lock(&task);
    /// # guard.reserve_fences(2)?;
    /// # guard.add_fence(write.fence(), FenceUsage::Write)?;
    /// # guard.add_fence(read.fence(), FenceUsage::Read)?;
    /// let mut writers = 0;
    /// for (_fence, usage) in guard.fence_entries(FenceUsage::Bookkeep) {
    ///     if usage <= FenceUsage::Write {
    ///         writers += 1; // an implicit-sync writer
    ///     }
    /// }
    /// assert_eq!(writers, 1);
    /// # drop(guard);
    /// # write.signal(Ok(()));
    /// # read.signal(Ok(()));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn fence_entries(&self, usage: FenceUsage) -> FenceEntries<'_> {
        FenceEntries {
            cursor: bindings::dma_resv_iter {
                obj: self.resv.as_raw(),
                usage: usage.as_raw(),
                ..Default::default()
            },
            started: false,
            _guard: PhantomData,
        }
    }
}

/// An iterator over a locked reservation's fences and their usages; see
/// [`ResvGuard::fence_entries`].
///
/// # Invariants
///
/// `cursor` iterates a reservation that the guard borrowed for `'g` keeps locked; the guard
/// cannot change the fence list while the iterator or a fence it yielded is alive. Like the
/// guard, the iterator is `!Send` (its cursor holds raw pointers): it stays on the task that
/// holds the lock, which `dma_resv_iter_first()` asserts.
pub struct FenceEntries<'g> {
    cursor: bindings::dma_resv_iter,
    started: bool,
    _guard: PhantomData<&'g ResvGuard<'g>>,
}

impl<'g> Iterator for FenceEntries<'g> {
    type Item = (&'g Fence, FenceUsage);

    fn next(&mut self) -> Option<(&'g Fence, FenceUsage)> {
        // SAFETY: The cursor was set up like `dma_resv_iter_begin` does, for a reservation that
        // the borrowed guard keeps locked; the locked iteration takes no references.
        let raw = unsafe {
            if self.started {
                bindings::dma_resv_iter_next(&mut self.cursor)
            } else {
                self.started = true;
                bindings::dma_resv_iter_first(&mut self.cursor)
            }
        };
        if raw.is_null() {
            return None;
        }
        // SAFETY: A fence in a locked reservation stays referenced by it until the lock (held
        // for `'g`) is released or the list changes, which needs the guard mutably.
        let fence = unsafe { Fence::from_raw(raw) };
        Some((fence, FenceUsage::from_raw(self.cursor.fence_usage)))
    }
}

/// An iterator over a locked reservation's fences; see [`ResvGuard::fences`].
pub struct Fences<'g>(FenceEntries<'g>);

impl<'g> Iterator for Fences<'g> {
    type Item = &'g Fence;

    fn next(&mut self) -> Option<&'g Fence> {
        self.0.next().map(|(fence, _)| fence)
    }
}

impl Drop for ResvGuard<'_> {
    fn drop(&mut self) {
        // SAFETY: By the type invariant the current task holds the lock, and this guard is
        // responsible for releasing it exactly once.
        unsafe { self.resv.unlock_raw() };
    }
}
