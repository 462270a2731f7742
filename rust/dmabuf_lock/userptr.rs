// SPDX-License-Identifier: GPL-2.0

//! Userptr: a range of a process's memory that a job uses, kept coherent by an mmu interval
//! notifier whose invalidation waits for the range's fences (R3), inside the mmu-notifier scope
//! that lockdep checks (R2).
//!
//! A driver that lets jobs use user memory directly must stop using the pages before the
//! process's address space changes there (`munmap`, `mprotect`, `fork`'s copy-on-write, reclaim,
//! migration): the kernel tells it through an `mmu_interval_notifier`, and the driver's callback
//! waits for the jobs that use the range. [`UserRange::register`] registers one on the calling
//! process's address space (`mmu_interval_notifier_insert()`); the driver's [`Invalidate`]
//! callback gets an [`Invalidation`], which waits for fences on a blockable range and only
//! checks them on one that may not block (where the kernel retries later, as the API wants).
//!
//! The sequence protocol of `mmu_interval_read_begin()` and `mmu_interval_read_retry()` is the
//! library's: [`UserRange::read_pages`] starts a read and pins the range's pages, and
//! [`UserRange::commit`] takes the range's notifier lock and checks that no invalidation ran
//! since; the job publishes its fence while the [`Committed`] guard lives. The callback sets the
//! sequence (`mmu_interval_set_seq()`) under the same lock before the driver's code runs, so the
//! driver cannot forget it, and an invalidation either sees the job's fence or makes the commit
//! fail with `EAGAIN`.
//!
//! The lock order is `fs_reclaim -> mmu notifier -> notifier lock -> fence wait`, as the kernel's
//! `dma_resv_lockdep()` primes its own notifier map: the callback runs with the library's
//! mmu-notifier map held ([`super::lockdep::Level::MmuNotifier`]), and registering primes the
//! notifier lock inside it. So lockdep reports an allocation or a blocking reservation lock in the
//! callback, and an allocation while a [`Committed`] guard is held, at the first time it happens
//! (R2, R3, R9). A reservation is locked *before* committing (reservations outside the notifier
//! lock), and the signalling section of the submission is entered inside the guard.
//!
//! Memory safety does not rest on the notifier: pages are lent only by long-term pins
//! (`pin_user_pages_remote()`, `FOLL_LONGTERM`) that a [`UserPages`] holds and unpins on drop.
//! A `UserPages` borrows its [`UserRange`] (its sequence is what
//! [`UserRange::commit`] checks); after the commit, [`UserPages::into_pins`] hands the pins to
//! the job as a [`PinnedPages`], owned, `'static` and `Send`, which the job keeps until its fence
//! signals and drops in process context (unpinning may sleep). The notifier keeps what a job uses
//! coherent with the process: each invalidation waits for the job's fence, but only as long as
//! the driver's time-out ([`Invalidation::wait_resv`] returns false and the change goes on), or
//! not at all if the callback does not wait for that fence. A job that dropped its pins before
//! its fence signalled would then use pages that may be freed and reused: a driver whose device
//! reads or writes the pages keeps the [`PinnedPages`] until the fence signals. Keep the
//! callback's wait longer than any job may run (a watchdog that signals the fence, R8).
//!
//! A registration holds a reference on the module this library is compiled into (its callback is
//! that module's code) and on the address space (`mmgrab()`, by the kernel). Dropping the
//! [`UserRange`] removes the notifier, waiting for callbacks under way
//! (`mmu_interval_notifier_remove()`). A leaked `UserRange` leaks its memory with it and stays
//! registered: its module can then never be unloaded, which is a leak, not a use-after-free.
//! Like every object that points at its module's code, a `UserRange` is refused during the
//! module's `init` (`EBUSY`).
//!
//! Only built with `CONFIG_MMU_NOTIFIER`.
//!
//! # Deadlocks that safe code can reach
//!
//! None of these is undefined behaviour, and lockdep reports only some of them:
//!
//! - Leaking a [`Committed`] (`mem::forget`): the notifier lock stays held, and every later
//!   invalidation of the range waits for it forever, including the process's exit.
//! - Dropping a [`UserRange`] from an invalidation callback (of any range on the same address
//!   space): removal waits for the invalidation under way, which is the one running the callback.
//! - Calling [`UserRange::read_pages`] (it takes `mmap_lock`), or dropping a [`UserPages`] pinned
//!   for writing (unpinning it takes each page's lock), while a [`Committed`] of a range of the
//!   same address space is held: an invalidation runs with `mmap_lock` or a page's lock held and
//!   waits for the notifier lock. Dropping [`PinnedPages`] pinned for writing there is the same.
//!   Allocating under a `Committed` is the same cycle through reclaim, and lockdep reports that
//!   one (R2, R3).
//! - [`UserRange::register`] while holding the address space's `mmap_lock`.
//! - A panic in [`Invalidate::invalidate`], or a KUnit assertion that fails while a
//!   [`Committed`] lives: the task ends without unwinding, the notifier lock or the address
//!   space's invalidation stays taken, and the next invalidation or the address space's teardown
//!   waits forever.
//!
//! # Examples
//!
//! ```
//! use dmabuf_lock::{
//!     context::MayBlock,
//!     fence::FenceTimeline,
//!     resv::{FenceUsage, OwnedResv},
//!     userptr::{Invalidate, Invalidation, UserRange},
//! };
//! use kernel::{page::PAGE_SIZE, sync::atomic::{Atomic, Relaxed}};
//! # // Four pages of anonymous memory, as a process would have them.
//! # // SAFETY: A KUnit case runs in a kthread of its own (`kthread_use_mm()` wants one) with
//! # // no address space: this attaches a new one, which lives until the case's kthread ends.
//! # kernel::error::to_result(unsafe { kernel::bindings::kunit_attach_mm() })?;
//! # // PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS (uapi/asm-generic/mman*.h; not in the
//! # // kernel crate's bindings).
//! # let (len, prot, flags): (usize, usize, usize) = (4 * PAGE_SIZE, 0x1 | 0x2, 0x02 | 0x20);
//! # // SAFETY: A new anonymous mapping in the task's own address space, replacing nothing.
//! # let addr = unsafe { kernel::bindings::vm_mmap(core::ptr::null_mut(), 0, len, prot, flags, 0) };
//! # if let Ok(errno @ -4095..=-1) = i32::try_from(addr as isize) {
//! #     return Err(Error::from_errno(errno));
//! # }
//!
//! /// A userptr object: the jobs that use it publish their fences on its reservation.
//! #[pin_data]
//! struct Userptr {
//!     #[pin]
//!     resv: OwnedResv,
//!     invalidations: Atomic<u32>,
//! }
//!
//! impl Invalidate for Userptr {
//!     fn invalidate(&self, range: &Invalidation<'_>) {
//!         self.invalidations.add(1, Relaxed);
//!         // Waits (bounded) on a blockable range; on one that may not block, only checks, and
//!         // the kernel retries later if a job is still running (R3).
//!         range.wait_resv(&self.resv, FenceUsage::Bookkeep, 10_000);
//!     }
//! }
//!
//! let task = MayBlock::new()?;
//! let userptr = UserRange::register(&task, addr, 4 * PAGE_SIZE, pin_init!(Userptr {
//!     resv <- OwnedResv::new(),
//!     invalidations: Atomic::new(0),
//! }))?;
//! let timeline = FenceTimeline::new();
//! // A job: pin the pages (no lock held), lock the reservation, commit, publish the fence.
//! let job = timeline.prepare(&task)?;
//! let pages = userptr.read_pages(&task, true)?;
//! assert_eq!(pages.len(), 4);
//! let mut guard = userptr.resv.lock(&task);
//! guard.reserve_fences(1)?;
//! let committed = userptr.commit(&task, &pages)?; // `EAGAIN`: invalidated meanwhile, retry
//! let job = job.arm();
//! guard.add_fence(job.fence(), FenceUsage::Write)?;
//! drop(committed);
//! drop(guard);
//! // The job owns the pins until its fence signals; they are dropped in process context.
//! let pins = pages.into_pins();
//! job.signal(Ok(()));
//! drop(pins);
//! // The process unmaps the range: the callback runs (and would wait for a pending job).
//! # // SAFETY: Unmaps the mapping made above, in the task's own address space.
//! # kernel::error::to_result(unsafe { kernel::bindings::vm_munmap(addr, len) })?;
//! assert!(userptr.invalidations.load(Relaxed) > 0);
//! // The range is gone: pinning it fails, and an older read would no longer commit.
//! assert_eq!(userptr.read_pages(&task, true).err(), Some(EFAULT));
//! drop(userptr); // the notifier is removed
//! # Ok::<(), Error>(())
//! ```

use super::{
    context::MayBlock,
    fence::{jiffies_timeout, Fence, ModuleRef},
    lockdep::{mmu_notifier_enter, mmu_notifier_exit, Level, LockOrder},
    resv::{FenceUsage, Resv},
};
use core::{
    cell::Cell,
    marker::PhantomData,
    ops::Deref,
    ptr::{self, NonNull},
};
use kernel::{
    bindings,
    error::to_result,
    ffi::{c_uint, c_ulong},
    mm::Mm,
    new_mutex,
    page::{BorrowedPage, PAGE_SIZE},
    prelude::*,
    sync::{
        atomic::{atomic_load, atomic_store, Atomic, Relaxed},
        lock::mutex::MutexBackend,
        lock::Guard,
        Mutex,
    },
    time::Msecs,
    types::{NotThreadSafe, Opaque},
};

/// The most pages one [`UserRange::read_pages`] pins (2^18: 1 GiB with 4 KiB pages); more is
/// `EINVAL`.
pub const MAX_READ_PAGES: usize = 1 << 18;

/// What a driver does when the process's address space changes in a registered range: stop
/// using the range's pages, waiting for the jobs that use them (R3).
///
/// The callback runs on whichever task changes the range's page tables, which need not be the
/// process that registered it nor share its address space: the process itself (`munmap`,
/// `mprotect`, `fork`, `madvise`, its exit), another process (`process_madvise(2)`,
/// `process_mrelease(2)`, direct reclaim in any task), or a kernel thread or work item (`kswapd`,
/// `kcompactd`, `khugepaged`, `ksmd`, page migration and NUMA balancing, the OOM reaper, the
/// address space's last `mmput()` from a workqueue). Do not rely on `current` there. It runs with
/// the range's notifier lock held and inside the mmu-notifier scope: it must not allocate with
/// `GFP_KERNEL`, lock a reservation or take `mmap_lock`, and lockdep reports it if it does (R2).
/// On a range that may not block ([`Invalidation::may_block`] is false: the OOM reaper and
/// `process_mrelease(2)`) it must not sleep at all; [`MayBlock::new`] succeeds there all the same
/// (the task could sleep as far as the scheduler knows), so it is no test: ask `may_block`.
///
/// See the module documentation for an example.
pub trait Invalidate: Send + Sync + 'static {
    /// Stops the use of the range's pages: waits for the fences of the jobs that use them
    /// ([`Invalidation::wait_resv`], [`Invalidation::wait_fence`]).
    fn invalidate(&self, range: &Invalidation<'_>);
}

/// Why the address space changes (`enum mmu_notifier_event`).
///
/// ```
/// # use dmabuf_lock::userptr::InvalidateEvent;
/// let event = InvalidateEvent::Protection;
/// assert!(event != InvalidateEvent::Unmap); // the pages stay, only their access changes
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InvalidateEvent {
    /// `munmap()` or `mremap()`: the range no longer maps these pages.
    Unmap,
    /// Page table entries cleared (`madvise()`, a page replaced, reclaim, migration).
    Clear,
    /// Access changes (`mprotect()`, `fork()` write-protecting for copy-on-write).
    Protection,
    /// The address space is going away (the process exits).
    Release,
    /// Anything else (soft-dirty tracking, device-exclusive entries).
    Other,
}

/// One invalidation of a [`UserRange`], as its [`Invalidate`] callback sees it.
///
/// ```
/// # use dmabuf_lock::{resv::{FenceUsage, OwnedResv}, userptr::{Invalidate, Invalidation}};
/// struct Job {
///     resv: Pin<KBox<OwnedResv>>,
/// }
///
/// impl Invalidate for Job {
///     fn invalidate(&self, range: &Invalidation<'_>) {
///         if !range.wait_resv(&self.resv, FenceUsage::Bookkeep, 5000) && range.may_block() {
///             pr_warn!("job still running after 5 s: its pages change under it\n");
///         }
///     }
/// }
/// # let _job = Job { resv: KBox::pin_init(OwnedResv::new(), GFP_KERNEL)? };
/// # Ok::<(), Error>(())
/// ```
pub struct Invalidation<'a> {
    range: &'a bindings::mmu_notifier_range,
    busy: Cell<bool>,
    _not_send: NotThreadSafe,
}

impl Invalidation<'_> {
    /// The first address that changes.
    pub fn start(&self) -> usize {
        self.range.start
    }

    /// The address after the last that changes.
    pub fn end(&self) -> usize {
        self.range.end
    }

    /// Why it changes.
    pub fn event(&self) -> InvalidateEvent {
        match self.range.event {
            bindings::mmu_notifier_event_MMU_NOTIFY_UNMAP => InvalidateEvent::Unmap,
            bindings::mmu_notifier_event_MMU_NOTIFY_CLEAR => InvalidateEvent::Clear,
            bindings::mmu_notifier_event_MMU_NOTIFY_PROTECTION_VMA
            | bindings::mmu_notifier_event_MMU_NOTIFY_PROTECTION_PAGE => {
                InvalidateEvent::Protection
            }
            bindings::mmu_notifier_event_MMU_NOTIFY_RELEASE => InvalidateEvent::Release,
            _ => InvalidateEvent::Other,
        }
    }

    /// Whether the callback may sleep (`mmu_notifier_range_blockable()`): false only for the OOM
    /// reaper and `process_mrelease(2)`, which retry a range whose callback could not finish
    /// without waiting.
    pub fn may_block(&self) -> bool {
        self.range.flags & bindings::MMU_NOTIFIER_RANGE_BLOCKABLE != 0
    }

    /// Waits up to `timeout_ms` for every fence of `usage` on `resv` (R3), not interruptibly;
    /// returns whether they have all signalled. On a range that may not block it only checks,
    /// and a fence still pending makes the kernel retry the invalidation later.
    ///
    /// A time-out cannot stop the change: the process's pages change under a job still running.
    /// Bound the job itself (a watchdog that signals its fence with an error, R8) and wait
    /// longer than that.
    pub fn wait_resv(&self, resv: &Resv, usage: FenceUsage, timeout_ms: Msecs) -> bool {
        if !self.may_block() {
            return self.checked(resv.test_signaled(usage));
        }
        let timeout = jiffies_timeout(timeout_ms).unsigned_abs();
        // SAFETY: The reservation is initialised (type invariant of `Resv`); a blockable
        // invalidation may sleep, and waiting for fences is allowed inside it (R3).
        let ret = unsafe {
            bindings::dma_resv_wait_timeout(resv.as_raw(), usage.as_raw(), false, timeout)
        };
        ret > 0
    }

    /// Waits up to `timeout_ms` for `fence`, as [`Invalidation::wait_resv`] does for a
    /// reservation's fences.
    pub fn wait_fence(&self, fence: &Fence, timeout_ms: Msecs) -> bool {
        if !self.may_block() {
            return self.checked(fence.is_signaled());
        }
        // SAFETY: The fence is initialised (type invariant of `Fence`); a blockable invalidation
        // may sleep.
        let ret = unsafe {
            bindings::dma_fence_wait_timeout(fence.as_raw(), false, jiffies_timeout(timeout_ms))
        };
        ret > 0
    }

    /// Records that a non-blocking invalidation found a fence pending.
    fn checked(&self, signalled: bool) -> bool {
        if !signalled {
            self.busy.set(true);
        }
        signalled
    }
}

/// What a [`UserRange`] holds in place: the C notifier is linked into the address space's
/// interval tree, and its callback finds the rest through it.
#[pin_data]
struct Registration<T: Invalidate> {
    #[pin]
    notifier: Opaque<bindings::mmu_interval_notifier>,
    /// The notifier lock: the callback sets the sequence under it, [`UserRange::commit`] checks
    /// it under it.
    #[pin]
    lock: Mutex<()>,
    data: Pin<KBox<T>>,
    start: usize,
    len: usize,
    /// The callback is this module's code.
    _module: ModuleRef,
}

impl<T: Invalidate> Registration<T> {
    /// The notifier's sequence (`interval_sub->invalidate_seq`), read once, as `READ_ONCE()`
    /// does: the callback writes it under `lock`, as `WRITE_ONCE()` does.
    fn seq(&self) -> c_ulong {
        let notifier = self.notifier.get();
        // SAFETY: The notifier is initialised (zeroed, then inserted) and pinned, so the field is
        // valid and aligned. It is written by `mmu_interval_notifier_insert()` (plainly, but
        // before `register` returns, so before any call of this method) and by the callback, with
        // `atomic_store`; the C side only reads it (`READ_ONCE()`). Every access that may run
        // concurrently with this one is atomic.
        unsafe { atomic_load(&raw mut (*notifier).invalidate_seq, Relaxed) }
    }
}

/// A range of the calling process's memory with an mmu interval notifier registered on it;
/// removed on drop. It dereferences to the driver's data, whose [`Invalidate`] callback runs on
/// each change of the range.
///
/// Dropping it sleeps: it waits for callbacks under way. Never drop it from an invalidation
/// callback (of any range on the same address space: it would wait for the invalidation that runs
/// it), nor while holding a lock that the callback takes.
///
/// # Invariants
///
/// `reg.notifier` is inserted into an address space's interval tree with the ops of `T` and is
/// removed only in `drop`, before `reg` is freed; `reg` stays pinned in its box until then. Its
/// `mm` is the registering address space, written once by the insertion and kept allocated by
/// the insertion's `mmgrab()` until the removal: no other address space has that address
/// meanwhile.
///
/// # Examples
///
/// ```
/// # use dmabuf_lock::{context::MayBlock, userptr::{Invalidate, Invalidation, UserRange}};
/// # use kernel::page::PAGE_SIZE;
/// struct Nothing;
///
/// impl Invalidate for Nothing {
///     fn invalidate(&self, _range: &Invalidation<'_>) {}
/// }
///
/// let task = MayBlock::new()?;
/// // Not page-aligned, empty, or wrapping around: refused.
/// assert_eq!(UserRange::register(&task, 0x1001, PAGE_SIZE, Nothing).err(), Some(EINVAL));
/// assert_eq!(UserRange::register(&task, 0x1000, 0, Nothing).err(), Some(EINVAL));
/// assert_eq!(UserRange::register(&task, usize::MAX - 0xfff, PAGE_SIZE, Nothing).err(), Some(EINVAL));
/// // A kernel thread has no address space to watch.
/// assert_eq!(UserRange::register(&task, 0x1000, PAGE_SIZE, Nothing).err(), Some(EINVAL));
/// # Ok::<(), Error>(())
/// ```
#[must_use = "dropping the range removes its notifier"]
pub struct UserRange<T: Invalidate> {
    reg: Pin<KBox<Registration<T>>>,
}

// SAFETY: The C notifier may be removed from any task, and `T: Send` lets the data be dropped
// there.
unsafe impl<T: Invalidate> Send for UserRange<T> {}

// SAFETY: `&UserRange` gives `&T` (`T: Sync`) and calls that synchronise on the notifier lock
// or on the kernel's own locks.
unsafe impl<T: Invalidate> Sync for UserRange<T> {}

/// Whether this module's userptr notifier lock is primed (see [`UserRange::register`]).
static PRIMED: Atomic<bool> = Atomic::new(false);

/// The ops of a `UserRange<T>`.
struct Ops<T>(PhantomData<T>);

impl<T: Invalidate> Ops<T> {
    const OPS: bindings::mmu_interval_notifier_ops = bindings::mmu_interval_notifier_ops {
        invalidate: Some(invalidate::<T>),
        invalidate_start: None,
        invalidate_finish: None,
    };
}

impl<T: Invalidate> UserRange<T> {
    /// Registers a notifier on `len` bytes at `start` of the current task's address space, with
    /// `data` (allocated in place) as its callback's data. The range need not be mapped yet:
    /// [`UserRange::read_pages`] finds out.
    ///
    /// `EINVAL` for a range that is empty, not page-aligned or wraps around, or for a task
    /// without an address space (a kernel thread); `EBUSY` during this module's `init`,
    /// `ENODEV` while it is being unloaded.
    ///
    /// The first registration of a module teaches lockdep the order `mmu notifier -> notifier
    /// lock -> fence wait` ([`LockOrder`], R9); the notifier locks of a module share one class.
    ///
    /// Do not call it while holding the address space's `mmap_lock` (an `MmapReadGuard` of
    /// `kernel::mm`): the first notifier of an address space takes it for writing
    /// (`mmu_notifier_register()`), and the task would wait for itself forever (R1).
    pub fn register<E>(
        task: &MayBlock,
        start: usize,
        len: usize,
        data: impl PinInit<T, E>,
    ) -> Result<Self>
    where
        Error: From<E>,
    {
        let aligned = |n: usize| n % PAGE_SIZE == 0;
        if len == 0 || !aligned(start) || !aligned(len) || start.checked_add(len).is_none() {
            return Err(EINVAL);
        }
        let current = kernel::current!();
        let mm = current.mm().ok_or(EINVAL)?;
        let module = ModuleRef::this_module()?;
        let data = KBox::pin_init(data, GFP_KERNEL)?;
        let reg = KBox::pin_init::<core::convert::Infallible>(
            pin_init!(Registration {
                notifier: Opaque::zeroed(),
                lock <- new_mutex!((), "dmabuf_lock_userptr_notifier"),
                data,
                start,
                len,
                _module: module,
            }),
            GFP_KERNEL,
        )?;
        // The notifier locks of this module share one lock class: primed once is enough.
        if !PRIMED.load(Relaxed) {
            LockOrder::new(c"userptr")
                .then(Level::MmuNotifier)
                .then(Level::Driver(&reg.lock, c"userptr_notifier_lock"))
                .then(Level::FenceWait)
                .prime(task)?;
            PRIMED.store(true, Relaxed);
        }
        let ops: &'static bindings::mmu_interval_notifier_ops = &Ops::<T>::OPS;
        // SAFETY: `notifier` is zeroed memory, pinned in `reg` until `drop` removes it (or
        // forever, if the `UserRange` is leaked), with the ops of `T`, which are static and this
        // module's code, kept loaded by `_module` while `reg` lives. `mm` is the current task's
        // live address space; the call takes its own reference (`mmgrab()`). The range is
        // non-empty and does not wrap (checked above). The call sleeps (the caller may: `task`)
        // and may take `mmap_lock` for writing: a caller holding it deadlocks, which is not
        // unsound, and the method's documentation forbids it.
        to_result(unsafe {
            bindings::mmu_interval_notifier_insert(
                reg.notifier.get(),
                mm.as_raw(),
                start as c_ulong,
                len as c_ulong,
                ops,
            )
        })?;
        // INVARIANT: Inserted just above, with the ops of `T`.
        Ok(Self { reg })
    }

    /// The first address of the range.
    pub fn start(&self) -> usize {
        self.reg.start
    }

    /// The length of the range, in bytes.
    pub fn len(&self) -> usize {
        self.reg.len
    }

    /// Whether the range is empty: never, registering refuses that.
    pub fn is_empty(&self) -> bool {
        self.reg.len == 0
    }

    /// Whether the range is in the current task's address space: the one it was registered in.
    ///
    /// [`UserRange::read_pages`] reads the registering process's memory from any task, as a
    /// driver's worker needs. A range reached through a file, though, can be used by every
    /// process the file is passed to: a driver checks this before it reads pages for a user's
    /// request (`EPERM` otherwise, as amdgpu does), so that one process cannot pin another's
    /// memory.
    ///
    /// ```
    /// # use dmabuf_lock::{context::MayBlock, userptr::{Invalidate, Invalidation, UserRange}};
    /// # use kernel::page::PAGE_SIZE;
    /// # struct Nothing;
    /// # impl Invalidate for Nothing {
    /// #     fn invalidate(&self, _range: &Invalidation<'_>) {}
    /// # }
    /// # // SAFETY: A KUnit case runs in a kthread of its own (`kthread_use_mm()` wants one) with
    /// # // no address space: this attaches a new one, which lives until the case's kthread ends.
    /// # kernel::error::to_result(unsafe { kernel::bindings::kunit_attach_mm() })?;
    /// # // PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS (uapi/asm-generic/mman*.h).
    /// # let (len, prot, flags): (usize, usize, usize) = (PAGE_SIZE, 0x1, 0x02 | 0x20);
    /// # // SAFETY: A new read-only anonymous mapping in the task's own address space.
    /// # let addr = unsafe { kernel::bindings::vm_mmap(core::ptr::null_mut(), 0, len, prot, flags, 0) };
    /// # if let Ok(errno @ -4095..=-1) = i32::try_from(addr as isize) {
    /// #     return Err(Error::from_errno(errno));
    /// # }
    /// let task = MayBlock::new()?;
    /// let range = UserRange::register(&task, addr, PAGE_SIZE, Nothing)?;
    /// assert!(range.is_in_current_mm());
    /// # Ok::<(), Error>(())
    /// ```
    pub fn is_in_current_mm(&self) -> bool {
        // SAFETY: `mm` was written by the insertion, before `register` returned, and not again
        // while the range is registered (type invariants); only its address is compared, which
        // no other address space can have meanwhile.
        let mm = unsafe { (*self.reg.notifier.get()).mm };
        kernel::current!()
            .mm()
            .is_some_and(|current| ptr::eq(current.as_raw(), mm))
    }

    /// Starts a read of the range (`mmu_interval_read_begin()`, which waits for an invalidation
    /// under way) and pins its pages in the registering process (`pin_user_pages_remote()`, for
    /// writing if `write`: a private page is copied first if it is shared copy-on-write).
    ///
    /// The pins are long-term ones (`FOLL_LONGTERM`), as a device's access to the pages is: the
    /// kernel first moves pages out of movable and CMA memory, and refuses what a long pin must
    /// not hold: a writable pin of a shared mapping of a file whose filesystem writes dirty pages
    /// back (`EFAULT`: the filesystem would find a page dirtied behind its back, with no buffers),
    /// and any pin of filesystem DAX memory (`EOPNOTSUPP`). Anonymous memory, `memfd`/tmpfs and
    /// private file mappings are accepted.
    ///
    /// Call it with no lock held that an invalidation takes, nor any reservation (it takes
    /// `mmap_lock`, R1). `EFAULT` if part of the range is not mapped, or not with the access
    /// asked; `ESRCH` once the process has exited; `EINVAL` above [`MAX_READ_PAGES`]; `ENOMEM`
    /// if the pages could not be moved out of movable memory.
    ///
    /// ```
    /// # use dmabuf_lock::{context::MayBlock, userptr::{Invalidate, Invalidation, UserRange}};
    /// # use kernel::page::PAGE_SIZE;
    /// # struct Nothing;
    /// # impl Invalidate for Nothing {
    /// #     fn invalidate(&self, _range: &Invalidation<'_>) {}
    /// # }
    /// # // SAFETY: A KUnit case runs in a kthread of its own (`kthread_use_mm()` wants one) with
    /// # // no address space: this attaches a new one, which lives until the case's kthread ends.
    /// # kernel::error::to_result(unsafe { kernel::bindings::kunit_attach_mm() })?;
    /// # // PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS (uapi/asm-generic/mman*.h; not in the
    /// # // kernel crate's bindings).
    /// # let (len, prot, flags): (usize, usize, usize) = (2 * PAGE_SIZE, 0x1, 0x02 | 0x20);
    /// # // SAFETY: A new read-only anonymous mapping in the task's own address space.
    /// # let addr = unsafe { kernel::bindings::vm_mmap(core::ptr::null_mut(), 0, len, prot, flags, 0) };
    /// # if let Ok(errno @ -4095..=-1) = i32::try_from(addr as isize) {
    /// #     return Err(Error::from_errno(errno));
    /// # }
    /// let task = MayBlock::new()?;
    /// let range = UserRange::register(&task, addr, 2 * PAGE_SIZE, Nothing)?;
    /// assert_eq!(range.read_pages(&task, false)?.len(), 2);
    /// assert_eq!(range.read_pages(&task, true).err(), Some(EFAULT)); // mapped read-only
    /// # Ok::<(), Error>(())
    /// ```
    pub fn read_pages(&self, _task: &MayBlock, write: bool) -> Result<UserPages<'_, T>> {
        let count = self.reg.len / PAGE_SIZE;
        if count > MAX_READ_PAGES {
            return Err(EINVAL);
        }
        let notifier = self.reg.notifier.get();
        // SAFETY: The notifier is registered (type invariant). The caller may sleep.
        let seq = unsafe { bindings::mmu_interval_read_begin(notifier) };
        let mut pages = KVVec::<*mut bindings::page>::with_capacity(count, GFP_KERNEL)?;
        // SAFETY: `mm` was set by the insertion and is not written again while it is
        // registered; it stays allocated (`mmgrab()`) until the notifier is removed.
        let mm = unsafe { Mm::from_raw((*notifier).mm) };
        let mm = mm.mmget_not_zero().ok_or(ESRCH)?;
        let mmap = mm.mmap_read_lock();
        // Long-term: the kernel refuses what such a pin must not hold (see above), rather than
        // let a driver write to file pages that the filesystem does not expect to change.
        let access: c_uint = if write { bindings::FOLL_WRITE } else { 0 };
        let flags = access | bindings::FOLL_LONGTERM;
        // SAFETY: `mm` has users (`mmget_not_zero`) and its `mmap_lock` is held for reading for
        // the whole call (`locked` is NULL); `pages` has room for `count` pointers.
        let pinned = unsafe {
            bindings::pin_user_pages_remote(
                mm.as_raw(),
                self.reg.start as c_ulong,
                count as c_ulong,
                flags,
                pages.as_mut_ptr(),
                ptr::null_mut(),
            )
        };
        drop(mmap);
        let pinned = usize::try_from(pinned)
            .map_err(|_| i32::try_from(pinned).map_or(EFAULT, Error::from_errno))?;
        // SAFETY: `pin_user_pages_remote` wrote `pinned` (at most `count`) page pointers.
        unsafe { pages.inc_len(pinned.min(count)) };
        // INVARIANT: Each page of `pages` was pinned just above, for writing if `write`, or is
        // the zero page (a read of memory never written).
        let pins = PinnedPages { pages, write };
        if pins.len() != count {
            // Part of the range is not mapped: the pages pinned so far are unpinned.
            return Err(EFAULT);
        }
        let read = UserPages {
            range: self,
            pins,
            seq,
        };
        Ok(read)
    }

    /// Takes the range's notifier lock and checks that no invalidation has run since `pages`
    /// were read (`mmu_interval_read_retry()`): `EAGAIN` if one has (read them again), `EINVAL`
    /// for pages of another range. While the returned guard lives, an invalidation waits for
    /// it: publish the job's fence where the callback waits for it, then drop the guard (R3).
    ///
    /// Lock the job's reservations before (a reservation is not taken under the notifier lock),
    /// and while the guard lives do not allocate (an invalidation runs in reclaim and waits for
    /// it: lockdep reports it, R2), read pages, drop a [`UserPages`] pinned for writing, nor let a
    /// KUnit assertion fail: each of these can deadlock with an invalidation (see the module
    /// documentation). Do not leak the guard. The job's signalling section is entered inside it.
    ///
    /// ```
    /// # use dmabuf_lock::{context::MayBlock, userptr::{Invalidate, Invalidation, UserRange}};
    /// # use kernel::page::PAGE_SIZE;
    /// # struct Nothing;
    /// # impl Invalidate for Nothing {
    /// #     fn invalidate(&self, _range: &Invalidation<'_>) {}
    /// # }
    /// # // SAFETY: A KUnit case runs in a kthread of its own (`kthread_use_mm()` wants one) with
    /// # // no address space: this attaches a new one, which lives until the case's kthread ends.
    /// # kernel::error::to_result(unsafe { kernel::bindings::kunit_attach_mm() })?;
    /// # // PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS (uapi/asm-generic/mman*.h; not in the
    /// # // kernel crate's bindings).
    /// # let (len, prot, flags): (usize, usize, usize) = (PAGE_SIZE, 0x1 | 0x2, 0x02 | 0x20);
    /// # // SAFETY: A new anonymous mapping in the task's own address space.
    /// # let addr = unsafe { kernel::bindings::vm_mmap(core::ptr::null_mut(), 0, len, prot, flags, 0) };
    /// # if let Ok(errno @ -4095..=-1) = i32::try_from(addr as isize) {
    /// #     return Err(Error::from_errno(errno));
    /// # }
    /// let task = MayBlock::new()?;
    /// let range = UserRange::register(&task, addr, PAGE_SIZE, Nothing)?;
    /// let pages = range.read_pages(&task, true)?;
    /// // The process unmaps the range meanwhile: an invalidation runs.
    /// # // SAFETY: Unmaps the task's own mapping.
    /// # kernel::error::to_result(unsafe { kernel::bindings::vm_munmap(addr, len) })?;
    /// assert_eq!(range.commit(&task, &pages).err(), Some(EAGAIN));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn commit<'a>(
        &'a self,
        _task: &MayBlock,
        pages: &UserPages<'a, T>,
    ) -> Result<Committed<'a>> {
        if !ptr::eq(pages.range, self) {
            return Err(EINVAL);
        }
        let guard = self.reg.lock.lock();
        // `mmu_interval_read_retry()`: the callback writes the sequence under this lock.
        let now = self.reg.seq();
        if now != pages.seq {
            return Err(EAGAIN);
        }
        Ok(Committed { _guard: guard })
    }
}

impl<T: Invalidate> Deref for UserRange<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.reg.data
    }
}

impl<T: Invalidate> Drop for UserRange<T> {
    /// Removes the notifier, waiting for its callbacks under way (it sleeps), then drops the
    /// data.
    fn drop(&mut self) {
        // SAFETY: The notifier is registered and removed only here (type invariant). Removal
        // waits for callbacks under way, and none starts afterwards, so `reg`, freed after this,
        // is no longer reachable from C. The C function must not be called from an ops callback:
        // from one it waits forever for the invalidation that runs it, a deadlock but no memory
        // error; the type's documentation forbids it.
        unsafe { bindings::mmu_interval_notifier_remove(self.reg.notifier.get()) };
    }
}

/// A read of a [`UserRange`] by [`UserRange::read_pages`]: the sequence that
/// [`UserRange::commit`] checks, and the pages' pins ([`PinnedPages`]), which
/// [`UserPages::into_pins`] hands to the job that uses them.
///
/// ```
/// # use dmabuf_lock::{context::MayBlock, userptr::{Invalidate, Invalidation, UserRange}};
/// # use kernel::page::PAGE_SIZE;
/// # struct Nothing;
/// # impl Invalidate for Nothing {
/// #     fn invalidate(&self, _range: &Invalidation<'_>) {}
/// # }
/// # // SAFETY: A KUnit case runs in a kthread of its own (`kthread_use_mm()` wants one) with
/// # // no address space: this attaches a new one, which lives until the case's kthread ends.
/// # kernel::error::to_result(unsafe { kernel::bindings::kunit_attach_mm() })?;
/// # // PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS (uapi/asm-generic/mman*.h; not in the
/// # // kernel crate's bindings).
/// # let (len, prot, flags): (usize, usize, usize) = (2 * PAGE_SIZE, 0x1 | 0x2, 0x02 | 0x20);
/// # // SAFETY: A new anonymous mapping in the task's own address space.
/// # let addr = unsafe { kernel::bindings::vm_mmap(core::ptr::null_mut(), 0, len, prot, flags, 0) };
/// # if let Ok(errno @ -4095..=-1) = i32::try_from(addr as isize) {
/// #     return Err(Error::from_errno(errno));
/// # }
/// let task = MayBlock::new()?;
/// let range = UserRange::register(&task, addr, 2 * PAGE_SIZE, Nothing)?;
/// let pages = range.read_pages(&task, true)?;
/// assert!(pages.page(1).is_some() && pages.page(2).is_none());
/// assert!(!pages.is_stale()); // nothing changed the range since the read
/// # Ok::<(), Error>(())
/// ```
pub struct UserPages<'a, T: Invalidate> {
    range: &'a UserRange<T>,
    pins: PinnedPages,
    seq: c_ulong,
}

impl<T: Invalidate> UserPages<'_, T> {
    /// The number of pages (the range's length in pages).
    pub fn len(&self) -> usize {
        self.pins.len()
    }

    /// Whether there are none: never, a read pins the whole range.
    pub fn is_empty(&self) -> bool {
        self.pins.is_empty()
    }

    /// The `index`th page of the range, kept by the pin while this value lives.
    pub fn page(&self, index: usize) -> Option<BorrowedPage<'_>> {
        self.pins.page(index)
    }

    /// The pins of the pages.
    pub fn pins(&self) -> &PinnedPages {
        &self.pins
    }

    /// Ends the read and keeps its pins: call it after [`UserRange::commit`], and let the job
    /// own them until its fence signals. They do not borrow the range.
    pub fn into_pins(self) -> PinnedPages {
        self.pins
    }

    /// Whether an invalidation has run since the read (`mmu_interval_check_retry()`): a hint
    /// without the lock; [`UserRange::commit`] is the check that counts.
    pub fn is_stale(&self) -> bool {
        self.range.reg.seq() != self.seq
    }
}

/// Long-term pins on the pages of a read of a [`UserRange`] ([`UserPages::into_pins`]), owned:
/// `'static` and `Send`, so a job keeps them until its fence signals, whatever happens to the
/// range and the process meanwhile (the pages then stay allocated, though no longer mapped
/// where the process had them). Unpinned on drop, marked dirty if they were pinned for writing,
/// which takes each page's lock: drop them in process context (a work item, a completion path
/// that may sleep), never in an interrupt or an hrtimer, nor while a [`Committed`] lives.
///
/// ```
/// # use dmabuf_lock::{context::MayBlock, userptr::{Invalidate, Invalidation, UserRange}};
/// # use kernel::page::PAGE_SIZE;
/// # struct Nothing;
/// # impl Invalidate for Nothing {
/// #     fn invalidate(&self, _range: &Invalidation<'_>) {}
/// # }
/// # // SAFETY: A KUnit case runs in a kthread of its own (`kthread_use_mm()` wants one) with
/// # // no address space: this attaches a new one, which lives until the case's kthread ends.
/// # kernel::error::to_result(unsafe { kernel::bindings::kunit_attach_mm() })?;
/// # // PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS (uapi/asm-generic/mman*.h; not in the
/// # // kernel crate's bindings).
/// # let (len, prot, flags): (usize, usize, usize) = (2 * PAGE_SIZE, 0x1 | 0x2, 0x02 | 0x20);
/// # // SAFETY: A new anonymous mapping in the task's own address space.
/// # let addr = unsafe { kernel::bindings::vm_mmap(core::ptr::null_mut(), 0, len, prot, flags, 0) };
/// # if let Ok(errno @ -4095..=-1) = i32::try_from(addr as isize) {
/// #     return Err(Error::from_errno(errno));
/// # }
/// let task = MayBlock::new()?;
/// let range = UserRange::register(&task, addr, 2 * PAGE_SIZE, Nothing)?;
/// let pins = range.read_pages(&task, true)?.into_pins();
/// // The process unmaps the range and the notifier goes: the pins keep the pages.
/// # // SAFETY: Unmaps the task's own mapping.
/// # kernel::error::to_result(unsafe { kernel::bindings::vm_munmap(addr, len) })?;
/// drop(range);
/// assert_eq!(pins.len(), 2);
/// assert!(pins.page(1).is_some());
/// drop(pins); // unpinned here, in process context
/// # Ok::<(), Error>(())
/// ```
///
/// # Invariants
///
/// Each pointer of `pages` is a page that this value holds a pin on (`FOLL_PIN |
/// FOLL_LONGTERM`, for writing if `write`), released only in `drop`, or the shared zero page,
/// which a read-only pin may return and which the kernel counts no pin on (it is never freed,
/// and unpinning skips it).
pub struct PinnedPages {
    pages: KVVec<*mut bindings::page>,
    write: bool,
}

// SAFETY: Pins may be released on any task (in process context, which `Drop` needs anyway); the
// pointers are only lent as `BorrowedPage`.
unsafe impl Send for PinnedPages {}

// SAFETY: `&PinnedPages` only lends pages (`Page` is `Sync`).
unsafe impl Sync for PinnedPages {}

impl PinnedPages {
    /// The number of pages.
    pub fn len(&self) -> usize {
        self.pages.len()
    }

    /// Whether there are none: never, a read pins the whole range.
    pub fn is_empty(&self) -> bool {
        self.pages.is_empty()
    }

    /// Whether the pages were pinned for writing.
    pub fn is_write(&self) -> bool {
        self.write
    }

    /// The `index`th page, kept by the pin while this value lives.
    pub fn page(&self, index: usize) -> Option<BorrowedPage<'_>> {
        let page = NonNull::new(*self.pages.get(index)?)?;
        // SAFETY: The page is pinned until `self` is dropped, which the borrow outlives, or is
        // the zero page, which is never freed (type invariant).
        Some(unsafe { BorrowedPage::from_raw(page) })
    }
}

impl Drop for PinnedPages {
    fn drop(&mut self) {
        let count = self.pages.len() as c_ulong;
        // SAFETY: Each page is pinned by this value (type invariant) and unpinned once, here.
        unsafe {
            if self.write {
                bindings::unpin_user_pages_dirty_lock(self.pages.as_mut_ptr(), count, true);
            } else {
                bindings::unpin_user_pages(self.pages.as_mut_ptr(), count);
            }
        }
    }
}

/// The notifier lock of a [`UserRange`], held after a successful [`UserRange::commit`]: the
/// pages read are current until it is dropped, and an invalidation waits for it (R3).
///
/// See the module documentation for an example.
#[must_use = "the job must publish its fence while the commit is held"]
pub struct Committed<'a> {
    _guard: Guard<'a, (), MutexBackend>,
}

/// `invalidate` of a `UserRange<T>`: the driver's callback inside the mmu-notifier scope, with the
/// notifier lock held and the sequence set.
///
/// # Safety
///
/// Called by the kernel on a notifier that `UserRange::<T>::register` inserted, with a valid
/// range.
unsafe extern "C" fn invalidate<T: Invalidate>(
    notifier: *mut bindings::mmu_interval_notifier,
    range: *const bindings::mmu_notifier_range,
    cur_seq: c_ulong,
) -> bool {
    let notifier = Opaque::cast_from(notifier);
    // SAFETY: The notifier is the `notifier` field of a `Registration<T>` (the caller's
    // guarantee), which is alive and pinned while it is inserted, which it is while a callback
    // runs (removal waits for callbacks). Only shared references to it are made.
    let reg = unsafe { &*kernel::container_of!(notifier, Registration<T>, notifier) };
    // SAFETY: The kernel passes a range valid for the call.
    let range = unsafe { &*range };
    let inv = Invalidation {
        range,
        busy: Cell::new(false),
        _not_send: NotThreadSafe,
    };
    let blockable = inv.may_block();
    mmu_notifier_enter();
    let guard = if blockable {
        Some(reg.lock.lock())
    } else {
        reg.lock.try_lock()
    };
    let done = match guard {
        Some(guard) => {
            // `mmu_interval_set_seq()`, under the lock that `commit` checks it under.
            // SAFETY: The notifier is registered, so the field is valid and aligned. Besides this
            // store, it is written only by `mmu_interval_notifier_insert()`, which finished
            // before the notifier was in the interval tree where callbacks find it, and it is
            // read concurrently only atomically: `READ_ONCE()` in `mmu_interval_read_begin()`
            // and `atomic_load` in `Registration::seq`.
            unsafe {
                atomic_store(
                    &raw mut (*reg.notifier.get()).invalidate_seq,
                    cur_seq,
                    Relaxed,
                )
            };
            reg.data.invalidate(&inv);
            drop(guard);
            // A non-blocking range with a fence pending returns false with the sequence already
            // set: a read begun before fails its commit (`EAGAIN`) and is redone, a retry and
            // nothing else.
            blockable || !inv.busy.get()
        }
        // A commit holds the lock: a range that may not block is retried later.
        None => false,
    };
    mmu_notifier_exit();
    done
}
