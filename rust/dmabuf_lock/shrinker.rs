// SPDX-License-Identifier: GPL-2.0

//! Shrinkers: evicting buffers under memory pressure, where only a trylock reaches a
//! reservation (R2).
//!
//! A driver implements [`Shrink`] for the data that knows its buffers and registers it with
//! [`Shrinker::register`] (`shrinker_alloc()` and `shrinker_register()`). The kernel calls
//! `count` to ask how much could be freed and `scan` to free it, from direct reclaim, `kswapd`
//! or `drop_caches`. A scan gets a [`ReclaimScope`] instead of a [`MayBlock`]: the reclaim scope
//! offers [`ReclaimScope::try_lock`] and nothing that blocks on a reservation, so
//! [`super::resv::Resv::lock`], `lock_interruptible` and the
//! [`super::locker::ResvLocker`] do not compile in a scan (`compile-fail/shrinker_scan_*.rs`). The
//! scope also tells lockdep that the scan is in reclaim (`fs_reclaim`), which direct reclaim
//! already does and `drop_caches` does not.
//!
//! Counts and scans are in pages, as DRM's shrinkers count: the kernel asks a scan for about
//! `count >> priority` objects (the priority goes from 12 down to 0 as reclaim gets harder), so
//! a count in buffers is so small that only `drop_caches` and the hardest reclaim passes ask for
//! anything. The shrinker is registered without `SHRINKER_NUMA_AWARE` and
//! `SHRINKER_MEMCG_AWARE`: it is asked for the whole machine whatever node is short of memory,
//! and not at all when a memory cgroup reaches its own limit.
//!
//! Dropping the [`Shrinker`] unregisters it (`shrinker_free()`): that waits for the scans under
//! way, after which none starts, and only then is the data dropped. A leaked `Shrinker` leaks its
//! data with it and stays registered until its module goes away: `dmabuf_lock.ko` frees the
//! shrinkers a module leaked when that module is unloaded or its init fails, before its code is
//! freed (`rust/reclaim.c`).
//!
//! # Examples
//!
//! ```
//! use dmabuf_lock::{
//!     context::MayBlock,
//!     fence::FenceTimeline,
//!     lockdep::ReclaimScope,
//!     resv::{FenceUsage, OwnedResv},
//!     shrinker::{ScanResult, Shrink, ShrinkControl, Shrinker},
//! };
//! use kernel::sync::atomic::{Atomic, Relaxed};
//!
//! /// A buffer whose backing pages reclaim may swap out once the GPU is done with it.
//! #[pin_data]
//! struct Buffer {
//!     #[pin]
//!     resv: OwnedResv,
//!     resident_pages: Atomic<usize>,
//! }
//!
//! impl Shrink for Buffer {
//!     fn count(&self) -> usize {
//!         self.resident_pages.load(Relaxed)
//!     }
//!
//!     fn scan(&self, reclaim: &ReclaimScope<'_>, control: &mut ShrinkControl) -> ScanResult {
//!         if !control.may_fs() {
//!             return ScanResult::Stop; // swapping out goes through shmem, a file system
//!         }
//!         // `self.resv.lock(..)` does not compile here: reclaim only trylocks (R2).
//!         let Some(guard) = reclaim.try_lock(&self.resv) else {
//!             return ScanResult::Freed(0); // somebody holds it: skip
//!         };
//!         if !guard.resv().test_signaled(FenceUsage::Bookkeep) {
//!             return ScanResult::Freed(0); // busy: a job still uses it
//!         }
//!         ScanResult::Freed(self.resident_pages.xchg(0, Relaxed))
//!     }
//! }
//!
//! let mut task = MayBlock::new()?;
//! let buffer = pin_init!(Buffer {
//!     resv <- OwnedResv::new(),
//!     resident_pages: Atomic::new(256), // 1 MiB
//! });
//! let shrinker = Shrinker::register(&task, c"my_gpu_buffers", buffer)?;
//! let job = FenceTimeline::new().prepare(&task)?.arm();
//! let mut guard = shrinker.resv.lock(&task);
//! guard.reserve_fences(1)?;
//! guard.add_fence(job.fence(), FenceUsage::Write)?;
//! drop(guard);
//! // What reclaim does, by hand: a busy buffer is kept...
//! let reclaim = task.reclaim_scope();
//! assert_eq!(shrinker.scan(&reclaim, &mut ShrinkControl::new(128)), ScanResult::Freed(0));
//! drop(reclaim);
//! job.signal(Ok(()));
//! // ... an allocation that forbids file system calls gets nothing...
//! let reclaim = task.reclaim_scope();
//! let mut nofs = ShrinkControl::new(128).no_fs();
//! assert_eq!(shrinker.scan(&reclaim, &mut nofs), ScanResult::Stop);
//! // ... and an idle one is evicted.
//! assert_eq!(shrinker.scan(&reclaim, &mut ShrinkControl::new(128)), ScanResult::Freed(256));
//! drop(reclaim);
//! assert_eq!(shrinker.count(), 0);
//! drop(shrinker); // unregistered; scans under way are waited for
//! # Ok::<(), Error>(())
//! ```

use super::{context::MayBlock, fence::this_module, lockdep::ReclaimScope};
use core::{ops::Deref, ptr::NonNull};
use kernel::{
    bindings,
    error::from_err_ptr,
    ffi::{c_char, c_ulong, c_void},
    prelude::*,
};

/// What a driver's shrinker does; the kernel calls it from reclaim.
///
/// Both methods may run at the same time on several CPUs, and at any time from the
/// registration until the [`Shrinker`] is dropped, hence `Sync` and `'static`. Both count in
/// pages (see the module documentation).
///
/// See the module documentation for an example.
pub trait Shrink: Send + Sync + 'static {
    /// How many pages a scan could free now. `0` says there is nothing to free this time, or
    /// that it cannot tell: the kernel skips the shrinker until its next pass. Values above
    /// `isize::MAX` are reported as `isize::MAX`. Must be cheap, must not lock or wait.
    fn count(&self) -> usize;

    /// Frees up to [`ShrinkControl::nr_to_scan`] pages, taking reservations only with
    /// [`ReclaimScope::try_lock`] and skipping what is busy.
    fn scan(&self, reclaim: &ReclaimScope<'_>, control: &mut ShrinkControl) -> ScanResult;
}

/// What reclaim asks of one scan (`struct shrink_control`): how much, and what freeing may do
/// for the allocation that reclaims.
///
/// ```
/// # use dmabuf_lock::shrinker::ShrinkControl;
/// let mut control = ShrinkControl::new(128); // as for a `GFP_KERNEL` allocation
/// assert!(control.may_fs() && control.may_io());
/// assert_eq!(control.nr_scanned(), 128);
/// control.set_nr_scanned(512); // the scan went through a whole 2 MiB buffer
/// assert_eq!(control.nr_scanned(), 512);
/// let noio = ShrinkControl::new(128).no_io(); // as for `GFP_NOIO`
/// assert!(!noio.may_fs() && !noio.may_io());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShrinkControl {
    nr_to_scan: usize,
    nr_scanned: usize,
    may_fs: bool,
    may_io: bool,
}

impl ShrinkControl {
    /// The control of a scan for `nr_to_scan` pages from an allocation that allows everything
    /// (`GFP_KERNEL`), as a driver may run its own scan by hand.
    pub const fn new(nr_to_scan: usize) -> Self {
        Self {
            nr_to_scan,
            nr_scanned: nr_to_scan,
            may_fs: true,
            may_io: true,
        }
    }

    /// The same for an allocation that forbids calls into file systems (`GFP_NOFS`).
    pub const fn no_fs(self) -> Self {
        Self {
            may_fs: false,
            ..self
        }
    }

    /// The same for an allocation that forbids any I/O (`GFP_NOIO`), file systems included.
    pub const fn no_io(self) -> Self {
        Self {
            may_fs: false,
            may_io: false,
            ..self
        }
    }

    /// How many pages the kernel asks the scan to look at.
    pub const fn nr_to_scan(&self) -> usize {
        self.nr_to_scan
    }

    /// Whether freeing may call into a file system, such as shmem to swap out (`__GFP_FS`).
    pub const fn may_fs(&self) -> bool {
        self.may_fs
    }

    /// Whether freeing may start I/O, such as writing to swap (`__GFP_IO`).
    pub const fn may_io(&self) -> bool {
        self.may_io
    }

    /// How many pages the scan looked at; [`ShrinkControl::nr_to_scan`] unless set.
    pub const fn nr_scanned(&self) -> usize {
        self.nr_scanned
    }

    /// Reports how many pages the scan looked at, when it is not what was asked (it went
    /// through a whole large buffer, or stopped early). Reclaim counts it against what it wanted
    /// scanned.
    pub fn set_nr_scanned(&mut self, nr_scanned: usize) {
        self.nr_scanned = nr_scanned;
    }
}

/// What a scan achieved.
///
/// ```
/// # use dmabuf_lock::shrinker::ScanResult;
/// let freed = 3;
/// let result = if freed > 0 { ScanResult::Freed(freed) } else { ScanResult::Stop };
/// assert_eq!(result, ScanResult::Freed(3));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScanResult {
    /// This many pages were freed (`0`: none could be, this time). Values above `isize::MAX`
    /// are reported as `isize::MAX`.
    Freed(usize),
    /// No progress is possible in this reclaim context (`SHRINK_STOP`): a lock it would need
    /// is held, or freeing needs what the allocation forbids ([`ShrinkControl::may_fs`],
    /// [`ShrinkControl::may_io`]).
    Stop,
}

/// `SHRINK_STOP` of `<linux/shrinker.h>`.
const SHRINK_STOP: c_ulong = !0;
/// The largest count or result reported: the kernel computes with them as `long`, and the
/// sentinels (`SHRINK_STOP`, `SHRINK_EMPTY`) lie above it.
const MAX_REPORTED: c_ulong = isize::MAX.unsigned_abs();

/// `struct dl_shrinker` of `rust/reclaim.c`.
#[repr(C)]
struct DlShrinker {
    _private: [u8; 0],
}

// bindgen emits empty structs for some types that `struct module` holds, as in `ffi.rs`.
#[allow(improper_ctypes)]
extern "C" {
    fn dl_shrinker_register(
        name: *const c_char,
        owner: *mut bindings::module,
        count: Option<ShrinkerCallback>,
        scan: Option<ShrinkerCallback>,
        private_data: *mut c_void,
    ) -> *mut DlShrinker;
    fn dl_shrinker_free(dl: *mut DlShrinker);
}

/// The type of `count_objects` and `scan_objects`.
type ShrinkerCallback =
    unsafe extern "C" fn(*mut bindings::shrinker, *mut bindings::shrink_control) -> c_ulong;

/// A registered shrinker and the driver data its callbacks use; unregistered on drop.
///
/// It dereferences to the data, so the driver's other paths reach the same buffers.
///
/// Dropping it sleeps: it waits for the scans under way. Drop it only where sleeping is allowed,
/// never from its own scan (which would wait for itself forever), and never while holding
/// something that its scan waits for.
///
/// # Invariants
///
/// `raw` was returned by `dl_shrinker_register` with the trampolines of `T` and a pointer to
/// `*data` as private data, and is freed only in `drop`, before `data` is dropped.
///
/// # Examples
///
/// ```
/// # use dmabuf_lock::{context::MayBlock, lockdep::ReclaimScope, shrinker::{ScanResult, Shrink, ShrinkControl, Shrinker}};
/// /// Nothing to free, ever.
/// struct Empty;
///
/// impl Shrink for Empty {
///     fn count(&self) -> usize {
///         0
///     }
///     fn scan(&self, _reclaim: &ReclaimScope<'_>, _control: &mut ShrinkControl) -> ScanResult {
///         ScanResult::Stop
///     }
/// }
///
/// let task = MayBlock::new()?;
/// let shrinker = Shrinker::register(&task, c"empty", Empty)?;
/// assert_eq!(shrinker.count(), 0); // through `Deref`
/// # Ok::<(), Error>(())
/// ```
#[must_use = "dropping the shrinker unregisters it"]
pub struct Shrinker<T: Shrink> {
    raw: NonNull<DlShrinker>,
    data: Pin<KBox<T>>,
}

// SAFETY: The C shrinker may be freed from any task; `T: Send` lets the data be dropped there.
unsafe impl<T: Shrink> Send for Shrinker<T> {}

// SAFETY: `&Shrinker` only gives `&T`, and `T: Sync`.
unsafe impl<T: Shrink> Sync for Shrinker<T> {}

impl<T: Shrink> Shrinker<T> {
    /// Allocates the data in place and registers a shrinker over it, called `name` (in
    /// `/sys/kernel/debug/shrinker/` with `CONFIG_SHRINKER_DEBUG`). Its callbacks may run as
    /// soon as this returns, and until the `Shrinker` is dropped.
    ///
    /// `ENODEV` while this module is being unloaded.
    ///
    /// ```
    /// # use dmabuf_lock::{context::MayBlock, lockdep::ReclaimScope, shrinker::{ScanResult, Shrink, ShrinkControl, Shrinker}};
    /// # struct Cache;
    /// # impl Shrink for Cache {
    /// #     fn count(&self) -> usize {
    /// #         0
    /// #     }
    /// #     fn scan(&self, _reclaim: &ReclaimScope<'_>, _control: &mut ShrinkControl) -> ScanResult {
    /// #         ScanResult::Stop
    /// #     }
    /// # }
    /// let task = MayBlock::new()?;
    /// let first = Shrinker::register(&task, c"cache", Cache)?;
    /// let second = Shrinker::register(&task, c"cache", Cache)?; // names need not be unique
    /// drop(first);
    /// drop(second);
    /// # Ok::<(), Error>(())
    /// ```
    pub fn register<E>(_task: &MayBlock, name: &CStr, data: impl PinInit<T, E>) -> Result<Self>
    where
        Error: From<E>,
    {
        let data = KBox::pin_init(data, GFP_KERNEL)?;
        let private = core::ptr::from_ref::<T>(&data).cast_mut().cast::<c_void>();
        // SAFETY: `name` is a C string, only read (copied) during the call. The trampolines are
        // those of `T`, and `private` points at the `T` in `data`, which stays in place (pinned
        // in its box) and alive until the registration ends: `drop` frees it first, and a
        // leaked `Shrinker` leaks the box (the core frees the registration when this module
        // goes). `this_module()` is the module whose code the trampolines are.
        let raw = unsafe {
            dl_shrinker_register(
                name.as_char_ptr(),
                this_module(),
                Some(count_objects::<T>),
                Some(scan_objects::<T>),
                private,
            )
        };
        let raw = NonNull::new(from_err_ptr(raw)?).ok_or(ENOMEM)?;
        // INVARIANT: Registered just above over `data`.
        Ok(Self { raw, data })
    }
}

impl<T: Shrink> Deref for Shrinker<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.data
    }
}

impl<T: Shrink> Drop for Shrinker<T> {
    /// Unregisters the shrinker, waiting for its scans under way (it sleeps), then drops the
    /// data.
    fn drop(&mut self) {
        // SAFETY: `raw` is registered and freed only here (type invariant).
        // `shrinker_free()` waits for the callbacks under way, and none starts afterwards, so
        // `data`, dropped after this, is no longer reachable from C.
        unsafe { dl_shrinker_free(self.raw.as_ptr()) };
    }
}

/// The data of a shrinker registered by [`Shrinker::register`] for `T`.
///
/// # Safety
///
/// `shrinker` is a shrinker that `Shrinker::<T>::register` registered, and the kernel is running
/// one of its callbacks.
unsafe fn shrinker_data<'a, T: Shrink>(shrinker: *mut bindings::shrinker) -> &'a T {
    // SAFETY: The caller's guarantee: the private data is the `T` of a `Shrinker<T>`, alive and
    // pinned while the shrinker is registered, which it is while a callback runs
    // (`shrinker_free()` waits for callbacks). Only shared references to it are made.
    unsafe { &*(*shrinker).private_data.cast::<T>() }
}

/// `count_objects` of a `Shrinker<T>`.
///
/// # Safety
///
/// Called by the kernel on a shrinker registered by `Shrinker::<T>::register`.
unsafe extern "C" fn count_objects<T: Shrink>(
    shrinker: *mut bindings::shrinker,
    _sc: *mut bindings::shrink_control,
) -> c_ulong {
    // SAFETY: The kernel runs this callback of a registered `Shrinker<T>`.
    let data = unsafe { shrinker_data::<T>(shrinker) };
    // `c_ulong` is `usize` in the kernel's Rust. `0` is passed on: nothing this time.
    data.count().min(MAX_REPORTED)
}

/// `scan_objects` of a `Shrinker<T>`: the driver's scan inside a reclaim scope.
///
/// # Safety
///
/// Called by the kernel on a shrinker registered by `Shrinker::<T>::register`, with its
/// `shrink_control`.
unsafe extern "C" fn scan_objects<T: Shrink>(
    shrinker: *mut bindings::shrinker,
    sc: *mut bindings::shrink_control,
) -> c_ulong {
    // SAFETY: The kernel runs this callback of a registered `Shrinker<T>`.
    let data = unsafe { shrinker_data::<T>(shrinker) };
    // SAFETY: `sc` is the kernel's control block for this call, valid and not otherwise used
    // during it.
    let sc = unsafe { &mut *sc };
    let allows = |bit: u32| sc.gfp_mask & (1 << bit) != 0;
    let mut control = ShrinkControl {
        nr_to_scan: sc.nr_to_scan,
        nr_scanned: sc.nr_to_scan,
        may_fs: allows(bindings::___GFP_FS_BIT),
        may_io: allows(bindings::___GFP_IO_BIT),
    };
    let reclaim = ReclaimScope::enter();
    let result = data.scan(&reclaim, &mut control);
    drop(reclaim);
    sc.nr_scanned = control.nr_scanned;
    match result {
        ScanResult::Freed(n) => n.min(MAX_REPORTED),
        ScanResult::Stop => SHRINK_STOP,
    }
}
