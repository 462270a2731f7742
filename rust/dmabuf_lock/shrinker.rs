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
//!     shrinker::{ScanResult, Shrink, Shrinker},
//! };
//! use kernel::sync::atomic::{Atomic, Relaxed};
//!
//! /// A buffer whose backing pages reclaim may free once the GPU is done with it.
//! #[pin_data]
//! struct Buffer {
//!     #[pin]
//!     resv: OwnedResv,
//!     resident: Atomic<bool>,
//! }
//!
//! impl Shrink for Buffer {
//!     fn count(&self) -> usize {
//!         usize::from(self.resident.load(Relaxed))
//!     }
//!
//!     fn scan(&self, reclaim: &ReclaimScope<'_>, _nr_to_scan: usize) -> ScanResult {
//!         // `self.resv.lock(..)` does not compile here: reclaim only trylocks (R2).
//!         let Some(guard) = reclaim.try_lock(&self.resv) else {
//!             return ScanResult::Freed(0); // somebody holds it: skip
//!         };
//!         if !guard.resv().test_signaled(FenceUsage::Bookkeep) {
//!             return ScanResult::Freed(0); // busy: a job still uses it
//!         }
//!         ScanResult::Freed(usize::from(self.resident.xchg(false, Relaxed)))
//!     }
//! }
//!
//! let mut task = MayBlock::new()?;
//! let buffer = pin_init!(Buffer {
//!     resv <- OwnedResv::new(),
//!     resident: Atomic::new(true),
//! });
//! let shrinker = Shrinker::register(&task, c"my_gpu_buffers", buffer)?;
//! let job = FenceTimeline::new().prepare(&task)?.arm();
//! let mut guard = shrinker.resv.lock(&task);
//! guard.reserve_fences(1)?;
//! guard.add_fence(job.fence(), FenceUsage::Write)?;
//! drop(guard);
//! // What reclaim does, by hand: a busy buffer is kept...
//! let reclaim = task.reclaim_scope();
//! assert_eq!(shrinker.scan(&reclaim, 1), ScanResult::Freed(0));
//! drop(reclaim);
//! job.signal(Ok(()));
//! // ... and an idle one evicted.
//! let reclaim = task.reclaim_scope();
//! assert_eq!(shrinker.scan(&reclaim, 1), ScanResult::Freed(1));
//! drop(reclaim);
//! assert_eq!(shrinker.count(), 0);
//! drop(shrinker); // unregistered; scans under way are waited for
//! # Ok::<(), Error>(())
//! ```

use super::{context::MayBlock, lockdep::ReclaimScope};
use core::{ops::Deref, ptr::NonNull};
use kernel::{
    bindings,
    error::from_err_ptr,
    ffi::{c_char, c_ulong, c_void},
    prelude::*,
    types::Opaque,
};

/// What a driver's shrinker does; the kernel calls it from reclaim.
///
/// Both methods may run at the same time on several CPUs, and at any time from the
/// registration until the [`Shrinker`] is dropped, hence `Sync` and `'static`.
///
/// See the module documentation for an example.
pub trait Shrink: Send + Sync + 'static {
    /// How many objects a scan could free now; `0` says there is nothing
    /// (`SHRINK_EMPTY`). Must be cheap, must not lock or wait.
    fn count(&self) -> usize;

    /// Frees up to `nr_to_scan` objects, taking reservations only with
    /// [`ReclaimScope::try_lock`] and skipping what is busy.
    fn scan(&self, reclaim: &ReclaimScope<'_>, nr_to_scan: usize) -> ScanResult;
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
    /// This many objects were freed (`0`: none could be, this time).
    Freed(usize),
    /// No progress is possible in this reclaim context (`SHRINK_STOP`): a lock it would need
    /// is held, or the allocation's `gfp` flags forbid what freeing needs.
    Stop,
}

/// `SHRINK_STOP` of `<linux/shrinker.h>`.
const SHRINK_STOP: c_ulong = !0;
/// `SHRINK_EMPTY` of `<linux/shrinker.h>`; counts and results stay below it.
const SHRINK_EMPTY: c_ulong = !0 - 1;

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

/// The module this code is compiled into.
fn this_module() -> *mut bindings::module {
    // `struct module` holds types that bindgen emits as empty structs; the `module!` macro
    // declares the same symbol the same way.
    #[allow(improper_ctypes)]
    extern "C" {
        static __this_module: Opaque<bindings::module>;
    }
    // SAFETY: Every module has `__this_module`, made by modpost, valid while its code can run.
    unsafe { __this_module.get() }
}

/// A registered shrinker and the driver data its callbacks use; unregistered on drop.
///
/// It dereferences to the data, so the driver's other paths reach the same buffers.
///
/// # Invariants
///
/// `raw` was returned by `dl_shrinker_register` with the trampolines of `T` and a pointer to
/// `*data` as private data, and is freed only in `drop`, before `data` is dropped.
///
/// # Examples
///
/// ```
/// # use dmabuf_lock::{context::MayBlock, lockdep::ReclaimScope, shrinker::{ScanResult, Shrink, Shrinker}};
/// /// Nothing to free, ever.
/// struct Empty;
///
/// impl Shrink for Empty {
///     fn count(&self) -> usize {
///         0
///     }
///     fn scan(&self, _reclaim: &ReclaimScope<'_>, _nr_to_scan: usize) -> ScanResult {
///         ScanResult::Stop
///     }
/// }
///
/// let task = MayBlock::new()?;
/// let shrinker = Shrinker::register(&task, c"empty", Empty)?;
/// assert_eq!(shrinker.count(), 0); // through `Deref`
/// # Ok::<(), Error>(())
/// ```
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
    /// # use dmabuf_lock::{context::MayBlock, lockdep::ReclaimScope, shrinker::{ScanResult, Shrink, Shrinker}};
    /// # struct Cache;
    /// # impl Shrink for Cache {
    /// #     fn count(&self) -> usize {
    /// #         0
    /// #     }
    /// #     fn scan(&self, _reclaim: &ReclaimScope<'_>, _nr_to_scan: usize) -> ScanResult {
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
    // `c_ulong` is `usize` in the kernel's Rust.
    match data.count() {
        0 => SHRINK_EMPTY,
        n => n.min(SHRINK_EMPTY - 1),
    }
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
    // SAFETY: `sc` is the kernel's control block for this call, valid during it.
    let nr_to_scan = unsafe { (*sc).nr_to_scan };
    let reclaim = ReclaimScope::enter();
    let result = data.scan(&reclaim, nr_to_scan);
    drop(reclaim);
    match result {
        ScanResult::Freed(n) => n.min(SHRINK_EMPTY - 1),
        ScanResult::Stop => SHRINK_STOP,
    }
}
