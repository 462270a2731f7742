// SPDX-License-Identifier: GPL-2.0

//! Lockdep helpers: annotation maps, might-lock, reclaim scopes, and priming a driver's lock
//! order (R2, R9).
//!
//! Lockdep learns an order only when a path takes two locks nested, so a rule is checked only
//! after both sides have run. [`LockOrder`] lets a driver declare where its own locks sit among
//! `mmap_lock`, reservations, reclaim and fence signalling, and takes them once at module init in
//! that order: from then on the *first* wrong acquisition is reported (R9). The declared order is
//! checked against R1 to R4 before anything is taken.
//!
//! Without `CONFIG_LOCKDEP` every annotation here compiles to nothing.
//!
//! # Examples
//!
//! Priming a driver's two orders; the lockdep case `tests/lockdep/r9_job_queue_primed_bad.rs`
//! shows the first wrong acquisition that lockdep then reports.
//!
//! ```
//! use dmabuf_lock::{
//!     context::MayBlock,
//!     lockdep::{Level, LockOrder},
//! };
//! use kernel::{new_mutex, new_spinlock};
//!
//! # let task = MayBlock::new()?;
//! let vm_lock = KBox::pin_init(new_mutex!(()), GFP_KERNEL)?;
//! let job_queue = KBox::pin_init(new_spinlock!(()), GFP_KERNEL)?;
//! // In module init, where the task has an mm, `Level::MmapLock` would come first.
//! LockOrder::new(c"vm")
//!     .then(Level::Driver(&*vm_lock, c"vm_lock"))
//!     .then(Level::Resv)
//!     .then(Level::Reclaim)
//!     .prime(&task)?;
//! LockOrder::new(c"jobs")
//!     .then(Level::Signalling)
//!     .then(Level::Driver(&*job_queue, c"job_queue"))
//!     .prime(&task)?;
//! // An order that breaks a rule is refused before anything is taken (R2 here).
//! let wrong = LockOrder::new(c"wrong").then(Level::Reclaim).then(Level::Resv);
//! assert_eq!(wrong.validate(), Err(EINVAL));
//! # Ok::<(), Error>(())
//! ```

#[cfg(CONFIG_LOCKDEP)]
use super::ffi;
use super::{
    context::MayBlock,
    resv::{Resv, ResvGuard},
};
use core::{fmt, marker::PhantomData};
use kernel::{
    bindings,
    error::{code::*, Result},
    prelude::*,
    sync::{LockClassKey, Mutex, SpinLock},
    types::{NotThreadSafe, Opaque},
};

/// A lockdep class for something that orders like a lock without being one: a hardware ring, a
/// queue that the signalling path drains.
///
/// # Examples
///
/// ```
/// # use dmabuf_lock::{context::MayBlock, lockdep::LockdepMap, resv::OwnedResv};
/// # use kernel::static_lock_class;
/// # let task = MayBlock::new()?;
/// # let resv = KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?;
/// let ring = KBox::pin_init(LockdepMap::new(c"ring", static_lock_class!()), GFP_KERNEL)?;
/// let guard = resv.lock(&task);
/// let held = ring.acquire(); // the ring nests inside reservations
/// drop(held);
/// drop(guard);
/// // Lockdep reported nothing: after a report it switches itself off.
/// // SAFETY: `debug_locks` is a plain global that lockdep only ever clears.
/// assert_eq!(unsafe { core::ptr::read_volatile(&raw const kernel::bindings::debug_locks) }, 1);
/// # Ok::<(), Error>(())
/// ```
///
/// # Invariants
///
/// With `CONFIG_LOCKDEP`, `holders` counts the [`MapGuard`]s made and not dropped (leaked ones
/// included): lockdep's table of held locks of those tasks points at `map`.
#[pin_data(PinnedDrop)]
pub struct LockdepMap {
    #[pin]
    map: Opaque<bindings::lockdep_map>,
    #[cfg(CONFIG_LOCKDEP)]
    holders: kernel::sync::atomic::Atomic<i64>,
}

// SAFETY: A lockdep map is only passed to lockdep, which serialises its own state.
unsafe impl Send for LockdepMap {}

// SAFETY: As above.
unsafe impl Sync for LockdepMap {}

impl LockdepMap {
    /// Returns an initialiser for a map of class `key`, reported as `name`.
    pub fn new(name: &'static CStr, key: Pin<&'static LockClassKey>) -> impl PinInit<Self> {
        pin_init!(Self {
            map <- Opaque::ffi_init(move |_slot: *mut bindings::lockdep_map| {
                #[cfg(CONFIG_LOCKDEP)]
                // SAFETY: `_slot` is pinned memory for a map; the name and the key are static.
                unsafe {
                    bindings::lockdep_init_map_type(
                        _slot,
                        name.as_char_ptr(),
                        key.as_ptr(),
                        0,
                        bindings::lockdep_wait_type_LD_WAIT_INV as u8,
                        bindings::lockdep_wait_type_LD_WAIT_INV as u8,
                        bindings::lockdep_lock_type_LD_LOCK_NORMAL as u8,
                    )
                };
                #[cfg(not(CONFIG_LOCKDEP))]
                let _ = (name, key);
            }),
            #[cfg(CONFIG_LOCKDEP)]
            holders: kernel::sync::atomic::Atomic::new(0),
        })
    }

    /// Tells lockdep the current task holds the map exclusively until the guard drops.
    pub fn acquire(&self) -> MapGuard<'_> {
        self.hold(false)
    }

    /// Tells lockdep the current task holds the map shared (recursive read) until the guard
    /// drops.
    pub fn acquire_read(&self) -> MapGuard<'_> {
        self.hold(true)
    }

    fn hold(&self, _shared: bool) -> MapGuard<'_> {
        #[cfg(CONFIG_LOCKDEP)]
        {
            // INVARIANT: Counted before lockdep records the acquisition.
            self.holders.add(1, kernel::sync::atomic::Relaxed);
            // SAFETY: The map was initialised in `new`; the guard releases it on this task.
            unsafe {
                if _shared {
                    ffi::dl_lock_map_acquire_read(self.map.get())
                } else {
                    ffi::dl_lock_map_acquire(self.map.get())
                }
            };
        }
        MapGuard {
            map: self,
            _not_send: NotThreadSafe,
        }
    }
}

/// The warning of a map dropped while a leaked guard holds it.
#[cfg(CONFIG_LOCKDEP)]
const LEAKED_MAP: &CStr =
    c"dmabuf_lock: lockdep map freed while a leaked guard holds it; lockdep switched off";

#[pinned_drop]
impl PinnedDrop for LockdepMap {
    fn drop(self: Pin<&mut Self>) {
        // Every guard borrows the map, so a holder left now is a leaked guard, and lockdep's
        // held-lock table points at memory that is about to go.
        #[cfg(CONFIG_LOCKDEP)]
        if self.holders.load(kernel::sync::atomic::Relaxed) != 0 {
            held_lock_freed(LEAKED_MAP);
        }
    }
}

/// Called when memory that a leaked guard still holds as a lock is about to be freed: the task
/// that leaked the guard has a lockdep entry pointing into it, which lockdep would read again
/// (when that task releases a lock taken before it). Warn, and switch lockdep off so that it
/// never does: a leak is a bug, but must not become a use-after-free.
pub(super) fn held_lock_freed(msg: &CStr) {
    // SAFETY: `msg` is a NUL-terminated string.
    unsafe { super::ffi::dl_warn(msg.as_char_ptr()) };
    // SAFETY: `debug_locks_off()` has no preconditions.
    unsafe { bindings::debug_locks_off() };
    // The task that leaked the guard may be inside lockdep right now, past its own check of
    // `debug_locks`; lockdep runs with interrupts off, so a grace period waits for it to leave.
    // (In atomic context this cannot wait; the window is the few instructions of one lockdep
    // call, and it is documented in `Documentation/soundness.md`.)
    #[cfg(CONFIG_LOCKDEP)]
    // SAFETY: Reads the current task's preempt count and interrupt state; no preconditions.
    if !unsafe { ffi::dl_in_atomic_context() } {
        // SAFETY: The caller may sleep (checked just above).
        unsafe { bindings::synchronize_rcu() };
    }
}

/// A lockdep map held by the current task; see [`LockdepMap::acquire`].
///
/// # Invariants
///
/// The current task acquired `map` when the guard was made (counted in its holders), and the
/// guard releases it once, on this task (`!Send`).
#[must_use = "the map is released when the guard is dropped"]
pub struct MapGuard<'a> {
    map: &'a LockdepMap,
    _not_send: NotThreadSafe,
}

impl Drop for MapGuard<'_> {
    fn drop(&mut self) {
        #[cfg(CONFIG_LOCKDEP)]
        {
            // SAFETY: The map was acquired by this task when the guard was made.
            unsafe { ffi::dl_lock_map_release(self.map.map.get()) };
            // INVARIANT: Lockdep no longer records this holder.
            self.map.holders.add(-1, kernel::sync::atomic::Relaxed);
        }
        #[cfg(not(CONFIG_LOCKDEP))]
        let _ = self.map;
    }
}

/// Tells lockdep "this may take the lock here", without taking it.
///
/// ```
/// # use dmabuf_lock::lockdep::MightLock;
/// # use kernel::new_mutex;
/// # let job_queue = KBox::pin_init(new_mutex!(0u32), GFP_KERNEL)?;
/// job_queue.might_lock(); // at the top of a path that locks it only sometimes
/// assert_eq!(*job_queue.lock(), 0); // it was not taken
/// # Ok::<(), Error>(())
/// ```
pub trait MightLock {
    /// Records an acquisition and release of the lock for lockdep.
    fn might_lock(&self);
}

impl<T: ?Sized> MightLock for Mutex<T> {
    fn might_lock(&self) {
        #[cfg(CONFIG_LOCKDEP)]
        // SAFETY: `kernel::sync::Lock` is `repr(C)` with the C lock as its first field (what
        // `Lock::from_raw` relies on), so the address is that of an initialised `struct mutex`.
        unsafe {
            ffi::dl_might_lock_mutex(core::ptr::from_ref(self).cast_mut().cast())
        };
    }
}

impl<T: ?Sized> MightLock for SpinLock<T> {
    fn might_lock(&self) {
        #[cfg(CONFIG_LOCKDEP)]
        // SAFETY: As for `Mutex`: the address is that of an initialised `spinlock_t`.
        unsafe {
            ffi::dl_might_lock_spinlock(core::ptr::from_ref(self).cast_mut().cast())
        };
    }
}

impl MightLock for Resv {
    fn might_lock(&self) {
        #[cfg(CONFIG_LOCKDEP)]
        // SAFETY: The reservation is initialised (type invariant of `Resv`).
        unsafe {
            ffi::dl_dma_resv_might_lock(self.as_raw())
        };
    }
}

/// Marks code that runs in memory reclaim (a shrinker, an eviction path): `fs_reclaim` is held
/// for lockdep until the scope ends (R2).
///
/// It borrows the [`MayBlock`], so inside it nothing of this library may block on a reservation
/// or allocate with `GFP_KERNEL`; [`ReclaimScope::try_lock`] is the way to a reservation.
///
/// # Examples
///
/// ```
/// # use dmabuf_lock::{context::MayBlock, resv::OwnedResv};
/// # let mut task = MayBlock::new()?;
/// # let bo_resv = KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?;
/// let reclaim = task.reclaim_scope();
/// let mut evicted = false;
/// if let Some(_guard) = reclaim.try_lock(&bo_resv) {
///     evicted = true; // evict
/// }
/// drop(reclaim);
/// assert!(evicted);
/// # Ok::<(), Error>(())
/// ```
///
/// # Invariants
///
/// The current task holds `fs_reclaim` (for lockdep) from the scope's creation until its drop.
#[must_use = "reclaim ends when the scope is dropped"]
pub struct ReclaimScope<'t> {
    _task: PhantomData<&'t mut MayBlock>,
    _not_send: NotThreadSafe,
}

impl MayBlock {
    /// Enters a reclaim scope; see [`ReclaimScope`].
    pub fn reclaim_scope(&mut self) -> ReclaimScope<'_> {
        ReclaimScope::enter()
    }
}

impl<'t> ReclaimScope<'t> {
    /// Enters reclaim for lockdep; for [`MayBlock::reclaim_scope`], and for a shrinker's scan,
    /// which the kernel runs in reclaim with no proof at hand ([`super::shrinker`]).
    pub(super) fn enter() -> Self {
        reclaim_acquire();
        // INVARIANT: `fs_reclaim` was just acquired, and is released by `drop`.
        ReclaimScope {
            _task: PhantomData,
            _not_send: NotThreadSafe,
        }
    }
}

impl ReclaimScope<'_> {
    /// Locks `resv` if it is free, without sleeping: the only lock reclaim may take (R2).
    ///
    /// The guard borrows the scope too, so it cannot outlive the reclaim it was taken in
    /// (`compile-fail/reclaim_guard_outlives_scope.rs`).
    pub fn try_lock<'s>(&'s self, resv: &'s Resv) -> Option<ResvGuard<'s>> {
        resv.try_lock_nosleep()
    }
}

impl Drop for ReclaimScope<'_> {
    fn drop(&mut self) {
        reclaim_release();
    }
}

fn reclaim_acquire() {
    #[cfg(CONFIG_LOCKDEP)]
    // SAFETY: Only updates lockdep's view of reclaim; released by `reclaim_release`.
    unsafe {
        bindings::fs_reclaim_acquire(bindings::GFP_KERNEL)
    };
}

fn reclaim_release() {
    #[cfg(CONFIG_LOCKDEP)]
    // SAFETY: Pairs with `reclaim_acquire` on this task.
    unsafe {
        bindings::fs_reclaim_release(bindings::GFP_KERNEL)
    };
}

/// A lock of a driver's own, as [`LockOrder`] takes it while priming.
pub trait PrimeLock {
    /// Whether holding it forbids sleeping (a spinlock).
    fn is_spinning(&self) -> bool;
    /// Takes the lock, runs `inner`, releases the lock.
    fn hold(&self, inner: &mut dyn FnMut());
}

impl<T: ?Sized> PrimeLock for Mutex<T> {
    fn is_spinning(&self) -> bool {
        false
    }

    fn hold(&self, inner: &mut dyn FnMut()) {
        let _guard = self.lock();
        inner();
    }
}

impl<T: ?Sized> PrimeLock for SpinLock<T> {
    fn is_spinning(&self) -> bool {
        true
    }

    fn hold(&self, inner: &mut dyn FnMut()) {
        let _guard = self.lock();
        inner();
    }
}

impl PrimeLock for LockdepMap {
    fn is_spinning(&self) -> bool {
        false
    }

    fn hold(&self, inner: &mut dyn FnMut()) {
        let _held = self.acquire();
        inner();
    }
}

/// A place in the dma-buf lock order, outermost first.
#[derive(Clone, Copy)]
pub enum Level<'a> {
    /// `mmap_lock`: page faults and user copies (R1). Outside reservations.
    MmapLock,
    /// A reservation lock, in an acquire context (R6).
    Resv,
    /// Memory reclaim (`fs_reclaim`): `GFP_KERNEL` allocations (R2). Inside reservations.
    Reclaim,
    /// An mmu-notifier invalidation (`mmu_interval_notifier` callbacks, userptr and hmm
    /// mirrors): inside reclaim, which may invalidate mappings; it may wait for fences (R3) but
    /// neither allocate with `GFP_KERNEL` nor take a reservation.
    MmuNotifier,
    /// Inside a fence-signalling critical section (R4): only driver locks may follow.
    Signalling,
    /// Waiting for a fence (R3): the innermost operation, so only last.
    FenceWait,
    /// One of the driver's own locks, with the name used in logs (R9).
    Driver(&'a (dyn PrimeLock + Sync), &'static CStr),
}

impl Level<'_> {
    fn name(&self) -> &CStr {
        match self {
            Level::MmapLock => c"mmap_lock",
            Level::Resv => c"dma_resv",
            Level::Reclaim => c"fs_reclaim",
            Level::MmuNotifier => c"mmu_notifier",
            Level::Signalling => c"fence_signalling",
            Level::FenceWait => c"fence_wait",
            Level::Driver(_, name) => name,
        }
    }

    fn sleeps(&self) -> bool {
        match self {
            Level::Driver(lock, _) => !lock.is_spinning(),
            Level::Signalling => false,
            _ => true,
        }
    }
}

const MAX_LEVELS: usize = 8;

/// A declared chain of locks, outermost first, that [`LockOrder::prime`] teaches lockdep.
///
/// See the module documentation for an example.
pub struct LockOrder<'a> {
    name: &'static CStr,
    levels: [Option<Level<'a>>; MAX_LEVELS],
    len: usize,
    overflow: bool,
}

impl<'a> LockOrder<'a> {
    /// Starts an empty order called `name` (used in logs).
    pub const fn new(name: &'static CStr) -> Self {
        Self {
            name,
            levels: [None; MAX_LEVELS],
            len: 0,
            overflow: false,
        }
    }

    /// Appends the next-inner level.
    pub const fn then(mut self, level: Level<'a>) -> Self {
        if self.len < MAX_LEVELS {
            self.levels[self.len] = Some(level);
            self.len += 1;
        } else {
            self.overflow = true;
        }
        self
    }

    fn iter(&self) -> impl Iterator<Item = &Level<'a>> {
        self.levels.iter().flatten()
    }

    /// Checks the declared order against the rules; `EINVAL` names the first conflict in the log.
    ///
    /// ```
    /// # use dmabuf_lock::lockdep::{Level, LockOrder};
    /// let order = |inner| LockOrder::new(c"userptr").then(Level::MmuNotifier).then(inner);
    /// assert_eq!(order(Level::FenceWait).validate(), Ok(()));
    /// // "blocking dma_resv lock inside an mmu notifier (R2)"
    /// assert_eq!(order(Level::Resv).validate(), Err(EINVAL));
    /// // "allocation (reclaim) inside an mmu notifier (R2)"
    /// assert_eq!(order(Level::Reclaim).validate(), Err(EINVAL));
    /// // "mmu notifier nested inside an mmu notifier (R2)"
    /// assert_eq!(order(Level::MmuNotifier).validate(), Err(EINVAL));
    /// ```
    pub fn validate(&self) -> Result {
        if self.overflow || self.len < 2 {
            pr_err!(
                "lock order {}: needs 2 to {MAX_LEVELS} levels\n",
                self.name.to_str().unwrap_or("?")
            );
            return Err(EINVAL);
        }
        let (mut seen_resv, mut seen_reclaim, mut in_section, mut spinning) =
            (false, false, false, false);
        let mut in_notifier = false;
        for (i, level) in self.iter().enumerate() {
            let conflict = match level {
                Level::MmapLock if seen_resv => Some("mmap_lock inside dma_resv (R1)"),
                Level::Resv | Level::Reclaim | Level::MmapLock | Level::MmuNotifier
                    if in_section =>
                {
                    Some("blocking lock or reclaim inside a signalling section (R4)")
                }
                Level::Resv if in_notifier => {
                    Some("blocking dma_resv lock inside an mmu notifier (R2)")
                }
                Level::Reclaim if in_notifier => {
                    Some("allocation (reclaim) inside an mmu notifier (R2)")
                }
                Level::MmapLock if in_notifier => Some("mmap_lock inside an mmu notifier (R2)"),
                Level::MmuNotifier if in_notifier => {
                    Some("mmu notifier nested inside an mmu notifier (R2)")
                }
                Level::Resv if seen_reclaim => Some("blocking dma_resv lock in reclaim (R2)"),
                Level::FenceWait if in_section => {
                    Some("fence wait inside a signalling section (R4)")
                }
                Level::FenceWait if i + 1 != self.len => Some("fence wait is innermost (R3)"),
                _ if spinning && level.sleeps() => Some("sleeping inside a spinlock"),
                _ => None,
            };
            if let Some(why) = conflict {
                pr_err!(
                    "lock order {}: {} at level {}: {why}\n",
                    self.name.to_str().unwrap_or("?"),
                    level.name().to_str().unwrap_or("?"),
                    i + 1
                );
                return Err(EINVAL);
            }
            seen_resv |= matches!(level, Level::Resv);
            seen_reclaim |= matches!(level, Level::Reclaim);
            in_notifier |= matches!(level, Level::MmuNotifier);
            in_section |= matches!(level, Level::Signalling);
            spinning |= matches!(level, Level::Driver(lock, _) if lock.is_spinning());
        }
        Ok(())
    }

    /// With `CONFIG_LOCKDEP`: validates the order ([`LockOrder::validate`]) and takes every
    /// level once, nested in the declared order, so lockdep knows the order before any real path
    /// runs (R9). Without it, does nothing at all (the call compiles away).
    #[cfg(CONFIG_LOCKDEP)]
    pub fn prime(&self, task: &MayBlock) -> Result {
        self.validate()?;
        let scratch = KBox::pin_init(super::resv::OwnedResv::new(), GFP_KERNEL)?;
        // `mmap_lock` is primed on the current task's mm (`mm_alloc()`, which the kernel's own
        // priming uses, is exported to KUnit tests only).
        let current = kernel::current!();
        let mm = current.mm();
        if mm.is_none() && self.iter().any(|l| matches!(l, Level::MmapLock)) {
            pr_err!(
                "lock order {}: priming mmap_lock needs a task with an mm (module init, a syscall)\n",
                self.name.to_str().unwrap_or("?")
            );
            return Err(EINVAL);
        }
        let mut levels = KVec::with_capacity(self.len, GFP_KERNEL)?;
        for level in self.iter() {
            levels.push(*level, GFP_KERNEL)?;
        }
        take_nested(&levels, task, &scratch, mm)?;
        pr_info!(
            "primed lock order {}: {:?}\n",
            self.name.to_str().unwrap_or("?"),
            self
        );
        Ok(())
    }

    /// See the `CONFIG_LOCKDEP` version: without lockdep there is nothing to teach.
    #[cfg(not(CONFIG_LOCKDEP))]
    #[inline(always)]
    pub fn prime(&self, _task: &MayBlock) -> Result {
        Ok(())
    }
}

/// Formats the chain, `mmap_lock -> dma_resv -> ...`.
impl fmt::Debug for LockOrder<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, level) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(" -> ")?;
            }
            f.write_str(level.name().to_str().unwrap_or("?"))?;
        }
        Ok(())
    }
}

/// The lockdep map of [`Level::MmuNotifier`], in `dmabuf_lock.ko` (`rust/reclaim.c`): the
/// kernel's own, `__mmu_notifier_invalidate_range_start_map`, is not exported to modules.
#[cfg(CONFIG_LOCKDEP)]
fn mmu_notifier_map() -> *mut bindings::lockdep_map {
    extern "C" {
        fn dl_mmu_notifier_map() -> *mut bindings::lockdep_map;
    }
    // SAFETY: Returns the address of a static; no preconditions.
    unsafe { dl_mmu_notifier_map() }
}

/// Enters the mmu-notifier scope for lockdep ([`Level::MmuNotifier`]) on this task: the callback
/// of a real invalidation runs inside it (`super::userptr`). Paired with [`mmu_notifier_exit`].
#[cfg(CONFIG_MMU_NOTIFIER)]
pub(super) fn mmu_notifier_enter() {
    #[cfg(CONFIG_LOCKDEP)]
    // SAFETY: `dl_mmu_notifier_map` returns a static map of `dmabuf_lock.ko`, which this module
    // links against; the caller releases it on this task.
    unsafe {
        ffi::dl_lock_map_acquire(mmu_notifier_map())
    };
}

/// Leaves the scope entered by [`mmu_notifier_enter`] on this task.
#[cfg(CONFIG_MMU_NOTIFIER)]
pub(super) fn mmu_notifier_exit() {
    #[cfg(CONFIG_LOCKDEP)]
    // SAFETY: Acquired by `mmu_notifier_enter` on this task.
    unsafe {
        ffi::dl_lock_map_release(mmu_notifier_map())
    };
}

/// Takes `levels[0]`, then the rest nested inside it, then releases it.
#[cfg(CONFIG_LOCKDEP)]
fn take_nested(
    levels: &[Level<'_>],
    task: &MayBlock,
    scratch: &super::resv::OwnedResv,
    mm: Option<&kernel::mm::MmWithUser>,
) -> Result {
    use super::locker::{LockerFlags, ResvLocker};
    let Some((level, rest)) = levels.split_first() else {
        return Ok(());
    };
    let inner = || take_nested(rest, task, scratch, mm);
    match level {
        Level::MmapLock => match mm {
            Some(mm) => {
                let _mmap = mm.mmap_read_lock();
                inner()
            }
            None => Err(EINVAL),
        },
        Level::Resv => {
            pin_init::stack_pin_init!(let locker = ResvLocker::new(LockerFlags::default()));
            locker.as_mut().lock_slice(task, &[&**scratch])?;
            inner()
        }
        Level::Reclaim => {
            reclaim_acquire();
            let ret = inner();
            reclaim_release();
            ret
        }
        Level::MmuNotifier => {
            // SAFETY: `dl_mmu_notifier_map` returns a static map of `dmabuf_lock.ko`, which this
            // module links against; it is released below, on this task.
            unsafe { ffi::dl_lock_map_acquire(mmu_notifier_map()) };
            let ret = inner();
            // SAFETY: Acquired just above on this task.
            unsafe { ffi::dl_lock_map_release(mmu_notifier_map()) };
            ret
        }
        Level::Signalling => {
            let cookie = super::signalling::begin_signalling();
            let ret = inner();
            super::signalling::end_signalling(cookie);
            ret
        }
        Level::FenceWait => {
            super::signalling::might_wait_for_fence(task);
            inner()
        }
        Level::Driver(lock, _) => {
            let mut ret = Ok(());
            lock.hold(&mut || ret = inner());
            ret
        }
    }
}
