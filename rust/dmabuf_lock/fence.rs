// SPDX-License-Identifier: GPL-2.0

//! Fences (`struct dma_fence`): a refcounted handle, and a minimal driver fence for the
//! reservation API and its tests.
//!
//! [`Fence`] is any `dma_fence`, used through [`ARef<Fence>`] or a borrowed `&Fence`.
//! [`FenceTimeline`] and [`DriverFence`] let this project's own code publish fences it signals;
//! the fence-signalling work (signalling sections, callbacks) builds on them.
//!
//! Rules: R3 (waiting for a fence is allowed under reservations), R8 (a driver fence signals
//! exactly once, with its error set first; one dropped unsignalled is signalled with
//! `-ECANCELED` and a warning).
//!
//! Code and data they point at: an unsignalled driver fence points at its `ops`, which live in
//! `dmabuf_lock.ko` (or, for a timeline made by [`FenceTimeline::with_hardware`], in the module
//! that made it), and at its driver and timeline names, which live in the fence's own memory
//! (a driver names its fences with [`FenceTimeline::with_names`]); it holds a reference on
//! the module of its ops until it has signalled (Linux 7.3 detaches `ops` from a fence when it
//! signals, and frees the fence's memory an RCU grace period after its last reference). A
//! registered callback points at its trampoline in the module that registered it (the library
//! is compiled into every module), and holds a reference on that module until it is removed.

use super::{context::MayBlock, ffi};
use core::ptr::{self, NonNull};

mod hardware;

pub use hardware::FenceHardware;
use hardware::{FenceOps, HwRef};
use kernel::{
    bindings,
    error::{code::*, to_result, Error, Result},
    prelude::*,
    sync::{
        aref::{ARef, AlwaysRefCounted},
        atomic::{Atomic, Relaxed},
    },
    time::{msecs_to_jiffies, Msecs},
    types::Opaque,
};

/// A `dma_fence`: a one-shot completion shared between drivers.
///
/// # Invariants
///
/// The wrapped fence is initialised (`dma_fence_init`) and its refcount is non-zero while a
/// reference to the `Fence` exists.
///
/// # Examples
///
/// ```
/// # use dmabuf_lock::{context::MayBlock, fence::{Fence, FenceTimeline}};
/// # use kernel::sync::aref::ARef;
/// # let task = MayBlock::new()?;
/// # let driver_fence = FenceTimeline::new().prepare(&task)?.arm();
/// let fence: ARef<Fence> = driver_fence.fence().into();
/// assert!(!fence.is_signaled());
/// driver_fence.signal(Ok(()));
/// assert!(fence.is_signaled()); // the reference outlives the driver fence
/// # Ok::<(), Error>(())
/// ```
#[repr(transparent)]
pub struct Fence(Opaque<bindings::dma_fence>);

// SAFETY: A `dma_fence` is made to be shared between tasks and drivers: its state changes under
// its own spinlock or atomically.
unsafe impl Send for Fence {}

// SAFETY: As above; every method takes `&self` and is safe to call concurrently.
unsafe impl Sync for Fence {}

// SAFETY: `dma_fence_get` and `dma_fence_put` manage the fence's refcount; the last put frees it.
unsafe impl AlwaysRefCounted for Fence {
    fn inc_ref(&self) {
        // SAFETY: The refcount is non-zero by the type invariant.
        unsafe { ffi::dl_dma_fence_get(self.as_raw()) };
    }

    unsafe fn dec_ref(obj: NonNull<Self>) {
        // SAFETY: The caller owns a reference, which is given up here.
        unsafe { ffi::dl_dma_fence_put(obj.as_ptr().cast()) };
    }
}

impl Fence {
    /// Borrows the fence at `ptr`.
    ///
    /// # Safety
    ///
    /// `ptr` points to an initialised `dma_fence` on which a reference is held for `'a`.
    pub unsafe fn from_raw<'a>(ptr: *mut bindings::dma_fence) -> &'a Self {
        // SAFETY: `Fence` is `repr(transparent)` over `Opaque<dma_fence>`; the caller guarantees
        // validity for `'a`.
        unsafe { &*ptr.cast::<Self>() }
    }

    /// Returns the raw `struct dma_fence` pointer.
    pub fn as_raw(&self) -> *mut bindings::dma_fence {
        self.0.get()
    }

    /// Returns whether the fence has signalled.
    ///
    /// ```
    /// # use dmabuf_lock::{context::MayBlock, fence::FenceTimeline};
    /// # let task = MayBlock::new()?;
    /// # let job = FenceTimeline::new().prepare(&task)?.arm();
    /// # let fence = job.fence();
    /// let mut done = false;
    /// if fence.is_signaled() {
    ///     done = true; // the work is done
    /// }
    /// assert!(!done);
    /// # job.signal(Ok(()));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn is_signaled(&self) -> bool {
        // SAFETY: The fence is initialised by the type invariant.
        unsafe { ffi::dl_dma_fence_is_signaled(self.as_raw()) }
    }

    /// Returns the fence's status: `Ok(false)` while pending, `Ok(true)` once signalled without
    /// error, and the error it was signalled with otherwise.
    ///
    /// ```
    /// # use dmabuf_lock::{context::MayBlock, fence::{Fence, FenceTimeline}};
    /// # use kernel::sync::aref::ARef;
    /// # let task = MayBlock::new()?;
    /// # let job = FenceTimeline::new().prepare(&task)?.arm();
    /// let fence: ARef<Fence> = job.fence().into();
    /// assert_eq!(fence.status(), Ok(false)); // pending
    /// job.cancel();
    /// assert_eq!(fence.status(), Err(ECANCELED));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn status(&self) -> Result<bool> {
        // SAFETY: The fence is initialised by the type invariant.
        let ret = unsafe { bindings::dma_fence_get_status(self.as_raw()) };
        to_result(ret).map(|()| ret == 1)
    }

    /// Returns the fence context (the timeline) this fence belongs to.
    ///
    /// ```
    /// # use dmabuf_lock::{context::MayBlock, fence::FenceTimeline};
    /// # let task = MayBlock::new()?;
    /// # let timeline = FenceTimeline::new();
    /// # let (a, b) = (timeline.prepare(&task)?.arm(), timeline.prepare(&task)?.arm());
    /// // Each fence of a timeline has a fence context of its own: jobs may finish in any order.
    /// assert_ne!(a.fence().context(), b.fence().context());
    /// # a.signal(Ok(()));
    /// # b.signal(Ok(()));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn context(&self) -> u64 {
        // SAFETY: `context` is set at initialisation and never changes.
        unsafe { (*self.as_raw()).context }
    }

    /// Returns the fence's sequence number on its timeline.
    ///
    /// ```
    /// # use dmabuf_lock::{context::MayBlock, fence::FenceTimeline};
    /// # let task = MayBlock::new()?;
    /// # let timeline = FenceTimeline::new();
    /// let first = timeline.prepare(&task)?.arm();
    /// let second = timeline.prepare(&task)?.arm();
    /// assert_eq!(first.fence().seqno(), 1);
    /// assert!(second.fence().seqno() > first.fence().seqno());
    /// # first.signal(Ok(()));
    /// # second.signal(Ok(()));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn seqno(&self) -> u64 {
        // SAFETY: `seqno` is set at initialisation and never changes.
        unsafe { (*self.as_raw()).seqno }
    }

    /// Returns whether this fence is `other` or comes after it on their timeline
    /// (`dma_fence_is_later_or_same()`, with 32-bit seqno wrap-around unless this fence was
    /// initialised with 64-bit seqnos, `DMA_FENCE_FLAG_SEQNO64_BIT`). A seqno comparison means nothing across timelines: fences of different
    /// contexts are `false` here, where C's result would be meaningless.
    ///
    /// ```
    /// # use dmabuf_lock::{context::MayBlock, fence::FenceTimeline};
    /// # let task = MayBlock::new()?;
    /// # let timeline = FenceTimeline::new();
    /// # let (first, second) = (timeline.prepare(&task)?.arm(), timeline.prepare(&task)?.arm());
    /// assert!(first.fence().is_later_or_same(first.fence()));
    /// // Two driver fences are never of one context: neither comes after the other.
    /// assert!(!second.fence().is_later_or_same(first.fence()));
    /// assert!(!first.fence().is_later_or_same(second.fence()));
    /// # first.signal(Ok(()));
    /// # second.signal(Ok(()));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn is_later_or_same(&self, other: &Fence) -> bool {
        if self.context() != other.context() {
            return false;
        }
        // SAFETY: Both fences are initialised (type invariant) and of the same context, as
        // `dma_fence_is_later` requires.
        unsafe { ffi::dl_dma_fence_is_later_or_same(self.as_raw(), other.as_raw()) }
    }

    /// Asks the fence's driver to signal it when done (`dma_fence_enable_signaling()`): drivers
    /// that signal only on request (`enable_signaling` in their ops) otherwise never do.
    /// Waiting and adding callbacks enable signalling themselves. It may call the driver's
    /// `enable_signaling` with the fence's lock held: not from code that holds that lock (a
    /// callback of a fence sharing it), which would deadlock.
    ///
    /// ```
    /// # use dmabuf_lock::{context::MayBlock, fence::FenceTimeline};
    /// # let task = MayBlock::new()?;
    /// # let job = FenceTimeline::new().prepare(&task)?.arm();
    /// # let fence = job.fence();
    /// fence.enable_signaling();
    /// assert!(!fence.is_signaled()); // asked for, not done: the driver signals when its work is
    /// # job.signal(Ok(()));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn enable_signaling(&self) {
        // SAFETY: The fence is initialised by the type invariant.
        unsafe { bindings::dma_fence_enable_signaling(self.as_raw()) };
    }

    /// Waits up to `timeout_ms` for the fence to signal: `Ok(true)` if it did, `Ok(false)` on
    /// time-out, `EINTR` if `interruptible` and a signal arrived. Allowed under a reservation
    /// (R3); the [`MayBlock`] keeps it out of signalling sections (R4).
    ///
    /// ```
    /// # use dmabuf_lock::{context::MayBlock, fence::{Fence, FenceTimeline}};
    /// # use kernel::sync::aref::ARef;
    /// # let task = MayBlock::new()?;
    /// # let job = FenceTimeline::new().prepare(&task)?.arm();
    /// # let fence: ARef<Fence> = job.fence().into();
    /// assert_eq!(fence.wait(&task, true, 10), Ok(false)); // pending: times out
    /// job.signal(Ok(()));
    /// if !fence.wait(&task, true, 100)? {
    ///     return Err(ETIMEDOUT);
    /// }
    /// # Ok::<(), Error>(())
    /// ```
    pub fn wait(&self, _task: &MayBlock, interruptible: bool, timeout_ms: Msecs) -> Result<bool> {
        let (fence, timeout) = (self.as_raw(), jiffies_timeout(timeout_ms));
        // SAFETY: The fence is initialised by the type invariant.
        let ret = unsafe { bindings::dma_fence_wait_timeout(fence, interruptible, timeout) };
        wait_result(ret)
    }
}

/// Converts milliseconds to the signed jiffies timeout of the fence wait functions.
pub(super) fn jiffies_timeout(timeout_ms: Msecs) -> kernel::ffi::c_long {
    kernel::ffi::c_long::try_from(msecs_to_jiffies(timeout_ms)).unwrap_or(kernel::ffi::c_long::MAX)
}

/// Interprets the return value of a fence wait: remaining jiffies, 0 on time-out, or an errno.
pub(super) fn wait_result(ret: kernel::ffi::c_long) -> Result<bool> {
    match ret {
        0 => Ok(false),
        r if r > 0 => Ok(true),
        r => Err(Error::from_errno(
            i32::try_from(r).unwrap_or(EINVAL.to_errno()),
        )),
    }
}

/// The module this code is compiled into: the library is built into every module that uses it.
pub(super) fn this_module() -> *mut bindings::module {
    // `struct module` holds types that bindgen emits as empty structs; the `module!` macro
    // declares the same symbol the same way.
    #[allow(improper_ctypes)]
    extern "C" {
        static __this_module: Opaque<bindings::module>;
    }
    // SAFETY: Every module has `__this_module`, made by modpost, valid while its code can run.
    unsafe { __this_module.get() }
}

/// The module this code is compiled into, if it has finished loading: `EBUSY` while its `init`
/// runs, `ENODEV` once it is being unloaded.
///
/// An object that points at the module's code (a callback, a fence's names, a buffer's ops) must
/// not be made before the module is live: a module whose `init` fails is freed by
/// `do_init_module()` whatever references are held on it, so an object made during `init` that
/// outlives a failing `init` (forgotten, or handed to a timer, a work item or another driver)
/// would run freed code. The module loader refuses its own users the same way
/// (`strong_try_module_get()` fails for a module that is still coming).
pub(super) fn live_module() -> Result<*mut bindings::module> {
    let module = this_module();
    // SAFETY: `module` is valid (see `this_module`). The state is read once, as `READ_ONCE()`
    // would: it changes under the loader only, from `COMING` to `LIVE` to `GOING`, and each
    // answer below is safe for the state read, whatever it becomes next (`LIVE` never goes
    // back to `COMING`; `GOING` is checked again atomically by `try_module_get`).
    let state = unsafe { ptr::read_volatile(&raw const (*module).state) };
    match state {
        bindings::module_state_MODULE_STATE_LIVE => Ok(module),
        bindings::module_state_MODULE_STATE_COMING
        | bindings::module_state_MODULE_STATE_UNFORMED => Err(EBUSY),
        _ => Err(ENODEV),
    }
}

/// A reference on a module, dropped with the value.
///
/// # Invariants
///
/// A reference on `module` was taken for this value, and is dropped once, in `drop`.
pub(super) struct ModuleRef {
    module: *mut bindings::module,
}

impl ModuleRef {
    /// Takes a reference on the module this code is compiled into, for an object that points at
    /// its code. Only once the module is live ([`live_module`]): `EBUSY` during its `init`,
    /// `ENODEV` while it is being unloaded, since its exit does not wait for references.
    pub(super) fn this_module() -> Result<Self> {
        let module = live_module()?;
        // `try_module_get` rather than checking the state and then counting: `delete_module()`
        // drops the count to zero before it marks the module going, and a plain increment in
        // between would be ignored by the unload. `try_module_get` fails once the count is zero.
        // SAFETY: `module` is this module, loaded while its code runs.
        if !unsafe { bindings::try_module_get(module) } {
            return Err(ENODEV);
        }
        // INVARIANT: The reference was just taken.
        Ok(Self { module })
    }

    /// Takes a reference on `dmabuf_lock.ko`, where the driver fences' `ops` live.
    fn core() -> Self {
        // SAFETY: `dl_core_module` only returns `THIS_MODULE` of `dmabuf_lock.ko`, which this
        // module links against, so it is loaded while this module is.
        let module = unsafe { ffi::dl_core_module() };
        // SAFETY: As above: the module is loaded; `__module_get` only counts.
        unsafe { bindings::__module_get(module) };
        // INVARIANT: The reference was just taken.
        Self { module }
    }
}

impl Drop for ModuleRef {
    fn drop(&mut self) {
        // SAFETY: Pairs with the reference of the constructor (type invariant). What may go
        // after it is the module's memory; this call comes from code of the module this
        // library is compiled into, so the core's text is not what runs here. Code of this
        // module that runs on after it does so in a task its exit waits for (file operations,
        // drained signalling queues, and dropping a `UserRange`, whose notifier is removed
        // before, so no callback of it runs on: a driver drops one from its file operations or
        // from work that its exit flushes), or inside an RCU read-side critical section, which
        // `free_module()`'s `synchronize_rcu()` waits for before it frees the module's memory:
        // an hrtimer callback giving up an interrupt job's last reference, or a fence op of
        // `FenceTimeline::with_hardware` returning to the dma-fence core under
        // `rcu_read_lock()`.
        unsafe { bindings::module_put(self.module) };
    }
}

// SAFETY: A module reference may be dropped on any task.
unsafe impl Send for ModuleRef {}

// SAFETY: `ModuleRef` has no `&self` methods.
unsafe impl Sync for ModuleRef {}

/// The longest driver or timeline name a fence can carry, in bytes (without the NUL).
pub const MAX_FENCE_NAME: usize = FENCE_NAME_SIZE - 1;

/// The size of a name buffer; `DL_FENCE_NAME_SIZE` in `rust/helpers.h`.
const FENCE_NAME_SIZE: usize = 32;

/// The names a driver fence reports (`dma_fence_driver_name()`, `dma_fence_timeline_name()`,
/// sync_file info, debugfs, traces): NUL-terminated copies, so that they live in the fence.
///
/// The layout is the tail of `struct dl_driver_fence` in `rust/helpers.h`.
#[repr(C)]
#[derive(Clone, Copy)]
struct FenceNames {
    driver: [u8; FENCE_NAME_SIZE],
    timeline: [u8; FENCE_NAME_SIZE],
}

impl FenceNames {
    /// The library's names, for [`FenceTimeline::new`].
    const LIBRARY: Self = match Self::new(c"dmabuf_lock", c"dmabuf_lock-timeline") {
        Some(names) => names,
        None => panic!("the library's fence names are too long"),
    };

    /// Copies both names; `None` if one is longer than [`MAX_FENCE_NAME`].
    const fn new(driver: &CStr, timeline: &CStr) -> Option<Self> {
        let (Some(driver), Some(timeline)) = (Self::copy(driver), Self::copy(timeline)) else {
            return None;
        };
        Some(Self { driver, timeline })
    }

    const fn copy(name: &CStr) -> Option<[u8; FENCE_NAME_SIZE]> {
        let bytes = name.to_bytes();
        if bytes.len() > MAX_FENCE_NAME {
            return None;
        }
        // Zero-filled, so the copy is NUL-terminated.
        let mut buf = [0u8; FENCE_NAME_SIZE];
        let mut i = 0;
        while i < bytes.len() {
            buf[i] = bytes[i];
            i += 1;
        }
        Some(buf)
    }
}

/// The memory of a driver fence: `struct dl_driver_fence` of `rust/helpers.h`, whose ops read
/// the names behind the fence, and a hardware timeline's hooks the hardware after them.
#[repr(C)]
struct DriverFenceStorage {
    base: Opaque<bindings::dma_fence>,
    names: FenceNames,
    hw: HwRef,
}

/// The source of a driver's fences.
///
/// Each fence gets a fence context of its own: fences of one context must signal in seqno order
/// (`dma_resv_add_fence()` and every waiter take a later fence of a context as proof that the
/// earlier ones are done), and jobs of a driver may finish in any order. The sequence numbers
/// still count up per timeline, for logs.
///
/// The timeline's fences report its driver and timeline names (`dmabuf_lock` and
/// `dmabuf_lock-timeline` unless [`FenceTimeline::with_names`] chose others). Each fence
/// carries a copy of them in its own memory, which the kernel frees an RCU grace period after
/// the last reference, so a name never outlives what it points into, whichever module or
/// timeline goes first.
///
/// # Examples
///
/// ```
/// # use dmabuf_lock::{context::MayBlock, fence::FenceTimeline};
/// # let task = MayBlock::new()?;
/// let timeline = FenceTimeline::with_names(c"my_gpu", c"my_gpu-ring0")?;
/// let fence = timeline.prepare(&task)?.arm();
/// assert_eq!(fence.fence().seqno(), 1); // the timeline's first fence
/// # fence.signal(Ok(()));
/// # Ok::<(), Error>(())
/// ```
pub struct FenceTimeline {
    next_seqno: Atomic<u64>,
    names: FenceNames,
    ops: FenceOps,
}

impl Default for FenceTimeline {
    fn default() -> Self {
        Self::new()
    }
}

impl FenceTimeline {
    /// Returns a timeline whose first fence has sequence number 1, named after the library.
    pub fn new() -> Self {
        Self {
            next_seqno: Atomic::new(1),
            names: FenceNames::LIBRARY,
            ops: FenceOps::LIBRARY,
        }
    }

    /// Returns a timeline whose fences report `driver` and `timeline` as their names; `EINVAL`
    /// if one is longer than [`MAX_FENCE_NAME`] bytes.
    ///
    /// ```
    /// # use dmabuf_lock::fence::{FenceTimeline, MAX_FENCE_NAME};
    /// let ring0 = FenceTimeline::with_names(c"my_gpu", c"my_gpu-ring0")?;
    /// # let _ = ring0;
    /// let long = c"a driver name longer than 31 bytes";
    /// assert!(long.to_bytes().len() > MAX_FENCE_NAME);
    /// assert!(FenceTimeline::with_names(long, c"ring0").is_err());
    /// # Ok::<(), Error>(())
    /// ```
    pub fn with_names(driver: &CStr, timeline: &CStr) -> Result<Self> {
        Ok(Self {
            next_seqno: Atomic::new(1),
            names: FenceNames::new(driver, timeline).ok_or(EINVAL)?,
            ops: FenceOps::LIBRARY,
        })
    }

    /// Allocates the storage of this timeline's next fence (`GFP_KERNEL`, hence the
    /// [`MayBlock`]). Arming it later, inside a signalling section, cannot fail or allocate (R4).
    ///
    /// ```
    /// # use dmabuf_lock::{context::MayBlock, fence::FenceTimeline};
    /// # let task = MayBlock::new()?;
    /// # let timeline = FenceTimeline::new();
    /// let prepared = timeline.prepare(&task)?;
    /// // ... later, inside the submission's signalling section:
    /// let fence = prepared.arm();
    /// assert!(!fence.fence().is_signaled());
    /// # fence.signal(Ok(()));
    /// # Ok::<(), Error>(())
    /// ```
    ///
    /// Fails with `ENOMEM`, or, on a timeline [`FenceTimeline::with_hardware`] made, `ENODEV`
    /// while this module is being unloaded (the fence would run its hooks).
    pub fn prepare(&self, _task: &MayBlock) -> Result<PreparedFence<'_>> {
        let ops_module = self.ops.module()?;
        let storage = DriverFenceStorage {
            base: Opaque::uninit(),
            names: self.names,
            hw: self.ops.hw,
        };
        Ok(PreparedFence {
            storage: KBox::new(storage, GFP_KERNEL)?,
            timeline: self,
            ops_module,
        })
    }
}

/// Storage for a driver fence, allocated ahead of the signalling path.
#[must_use = "dropping it frees the storage; arm it to publish a fence"]
pub struct PreparedFence<'t> {
    storage: KBox<DriverFenceStorage>,
    timeline: &'t FenceTimeline,
    /// The module that holds the fence's ops, pinned until the fence signals.
    ops_module: ModuleRef,
}

impl PreparedFence<'_> {
    /// Initialises the fence in a fence context of its own, with the timeline's next sequence
    /// number; from here on it must be signalled (R8). Allocates nothing and cannot fail, so it
    /// may run inside a section.
    ///
    /// The fence's `ops` live in `dmabuf_lock.ko`, not in the module that arms it, and until it
    /// signals the fence holds a reference on `dmabuf_lock.ko`; its names are in its own memory.
    /// A fence that outlives the module that armed it (in a `sync_file`, or leaked) points at
    /// no code or data of that module. (A fence of a [`FenceTimeline::with_hardware`] timeline
    /// pins the module of its hooks instead, until it signals.)
    ///
    /// ```
    /// # use dmabuf_lock::{context::MayBlock, fence::FenceTimeline};
    /// # let mut task = MayBlock::new()?;
    /// # let timeline = FenceTimeline::new();
    /// # let prepared = timeline.prepare(&task)?;
    /// let section = task.signalling_section();
    /// let fence = prepared.arm(); // allocates nothing
    /// # drop(section);
    /// assert_eq!(fence.fence().status(), Ok(false));
    /// # fence.signal(Ok(()));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn arm(self) -> DriverFence {
        // `base` is the first field of a `repr(C)` struct: the fence's pointer is the
        // allocation's, which `dma_fence_free()` gives to `kfree_rcu`.
        let raw = KBox::into_raw(self.storage).cast::<bindings::dma_fence>();
        let seqno = self.timeline.next_seqno.fetch_add(1, Relaxed);
        // SAFETY: `dma_fence_context_alloc` has no preconditions (an atomic increment).
        let context = unsafe { bindings::dma_fence_context_alloc(1) };
        // SAFETY: `raw` is the `base` of a `struct dl_driver_fence` (`DriverFenceStorage`, whose
        // names and hardware were written in `prepare`) that nothing else uses; a NULL lock
        // selects the fence's inline lock. The ops (`FenceOps`) read only what is behind the
        // fence and the `'static` hardware, and have no `release` and no `wait`, so the memory,
        // which came from kmalloc, is freed by `dma_fence_free()` with `kfree_rcu`, and the
        // fence forgets the ops when it signals; until then `ops_module` pins their module.
        unsafe {
            bindings::dma_fence_init(
                raw,
                self.timeline.ops.table,
                ptr::null_mut(),
                context,
                seqno,
            )
        };
        // SAFETY: `dma_fence_init` set the refcount to 1, which the new `ARef` owns.
        let fence = unsafe { ARef::from_raw(NonNull::new_unchecked(raw.cast::<Fence>())) };
        // INVARIANT: Armed just now and not signalled; the reference pins the ops' module.
        DriverFence {
            fence,
            _ops_module: self.ops_module,
        }
    }
}

/// A fence this driver has published and must signal (R8).
///
/// Signal it with [`DriverFence::signal`], which consumes it, so it cannot signal twice. If it is
/// dropped unsignalled, it is signalled with `-ECANCELED` and a warning, so no waiter hangs.
///
/// # Examples
///
/// ```
/// # use dmabuf_lock::{context::MayBlock, fence::FenceTimeline, resv::{FenceUsage, OwnedResv}};
/// # let task = MayBlock::new()?;
/// # let resv = KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?;
/// # let timeline = FenceTimeline::new();
/// # let mut guard = resv.lock(&task);
/// # guard.reserve_fences(1)?;
/// let job_fence = timeline.prepare(&task)?.arm();
/// guard.add_fence(job_fence.fence(), FenceUsage::Write)?;
/// # drop(guard);
/// assert!(!resv.test_signaled(FenceUsage::Write));
/// job_fence.signal(Ok(()));
/// assert!(resv.test_signaled(FenceUsage::Write));
/// # Ok::<(), Error>(())
/// ```
///
/// # Invariants
///
/// `fence` uses the library's driver fence ops (`FenceOps`) and is signalled by this value
/// (when it is consumed or dropped) or, earlier, by its timeline's hardware hooks
/// ([`FenceHardware`]); until it has signalled `_ops_module` pins the module holding the ops.
#[must_use = "a published fence must be signalled (R8); dropping it cancels it with a warning"]
pub struct DriverFence {
    fence: ARef<Fence>,
    _ops_module: ModuleRef,
}

impl DriverFence {
    /// Returns the fence, to publish it (add it to a reservation, hand out a reference).
    pub fn fence(&self) -> &Fence {
        &self.fence
    }

    /// Signals the fence, setting `result`'s error on it first.
    ///
    /// ```
    /// # use dmabuf_lock::{context::MayBlock, fence::{Fence, FenceTimeline}};
    /// # use kernel::sync::aref::ARef;
    /// # let task = MayBlock::new()?;
    /// # let job_fence = FenceTimeline::new().prepare(&task)?.arm();
    /// # let fence: ARef<Fence> = job_fence.fence().into();
    /// job_fence.signal(Err(ETIMEDOUT));
    /// assert_eq!(fence.status(), Err(ETIMEDOUT));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn signal(self, result: Result) {
        self.signal_with(result);
    }

    /// Signals the fence with `-ECANCELED`: the work it stands for will not be done.
    ///
    /// ```
    /// # use dmabuf_lock::{context::MayBlock, fence::{Fence, FenceTimeline}};
    /// # use kernel::sync::aref::ARef;
    /// # let task = MayBlock::new()?;
    /// # let job_fence = FenceTimeline::new().prepare(&task)?.arm();
    /// # let fence: ARef<Fence> = job_fence.fence().into();
    /// job_fence.cancel();
    /// assert_eq!(fence.status(), Err(ECANCELED));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn cancel(self) {
        self.signal_with(Err(ECANCELED));
    }

    /// Signals the fence with `result`'s error, unless it has signalled or its hardware says,
    /// asked now under the fence's lock, that the work is done ([`FenceHardware::signaled`]):
    /// the fence then signals without the error, since the work was done.
    fn signal_with(&self, result: Result) {
        let error = result.err().map_or(0, Error::to_errno);
        // SAFETY: The fence is initialised (type invariant of `Fence`); the helper sets the error
        // and signals under the fence's lock, only if it has not signalled.
        unsafe { ffi::dl_dma_fence_signal_error(self.fence.as_raw(), error) };
    }
}

impl Drop for DriverFence {
    fn drop(&mut self) {
        // `signal` and `cancel` signal and then drop `self`; an unsignalled fence here was
        // dropped without either, which is a driver bug (R8): signal it anyway, so that no
        // waiter hangs.
        if !self.fence.is_signaled() {
            pr_err!(
                "fence {}:{} dropped unsignalled; signalling -ECANCELED\n",
                self.fence.context(),
                self.fence.seqno()
            );
            let msg = c"dmabuf_lock: driver fence dropped unsignalled (R8)";
            // SAFETY: `msg` is a NUL-terminated static string.
            unsafe { ffi::dl_warn(msg.as_char_ptr()) };
            self.signal_with(Err(ECANCELED));
        }
        // The fence has signalled, so its `ops` are detached: `_ops_module` may go.
    }
}

/// Whether [`FenceCallback::add`] registered the callback.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallbackStatus {
    /// The callback will run once, when the fence signals.
    Registered,
    /// The fence had already signalled: the callback was not registered and will not run.
    AlreadySignaled,
}

/// A function run once when a fence signals (`dma_fence_add_callback`).
///
/// It runs in the signaller's context, under the fence's lock, possibly in an interrupt, so it
/// must not sleep. Dropping the callback removes it if it has not run.
///
/// The function is `'static`: a callback that is leaked (its box forgotten) stays registered
/// and may run at any later time, so it must not borrow anything. While registered, it holds a
/// reference on this module (its trampoline is code of the module); a leaked one keeps the
/// module loaded. Registering fails with `ENODEV` while the module is being unloaded, when the
/// kernel no longer honours module references. (A module whose init fails is freed whatever its
/// references: a callback registered during such an init and leaked is the one case this cannot
/// cover; see `Documentation/soundness.md`.)
///
/// # Invariants
///
/// When `registration` is set, `cb` is registered on its fence (or was, and has run) and its
/// module reference pins the trampoline's module. `func` is only accessed through raw pointers:
/// by the trampoline under the fence lock, or by the owner when `registration` is unset; `Opaque`
/// keeps `&mut Self` from asserting exclusive access to it while the trampoline may run.
///
/// # Examples
///
/// ```
/// use dmabuf_lock::{
///     context::MayBlock,
///     fence::{CallbackStatus, FenceCallback, FenceTimeline},
/// };
/// use kernel::sync::{
///     atomic::{Atomic, Relaxed},
///     Arc,
/// };
///
/// # let task = MayBlock::new()?;
/// # let job = FenceTimeline::new().prepare(&task)?.arm();
/// # let fence = job.fence();
/// let runs = Arc::new(Atomic::<u32>::new(0), GFP_KERNEL)?;
/// let seen = runs.clone();
/// let mut cb = KBox::pin_init(FenceCallback::new(move || seen.add(1, Relaxed)), GFP_KERNEL)?;
/// match cb.as_mut().add(fence)? {
///     CallbackStatus::Registered => {}
///     // Signalled already: the callback will not run, do its work here.
///     CallbackStatus::AlreadySignaled => runs.add(1, Relaxed),
/// }
/// job.signal(Ok(())); // runs the callback
/// assert_eq!(runs.load(Relaxed), 1);
/// # Ok::<(), Error>(())
/// ```
#[pin_data(PinnedDrop)]
pub struct FenceCallback<F: FnOnce() + Send + 'static> {
    #[pin]
    cb: Opaque<bindings::dma_fence_cb>,
    #[pin]
    func: Opaque<Option<F>>,
    registration: Option<Registration>,
}

/// What a registered [`FenceCallback`] holds: the fence, and its own module.
struct Registration {
    fence: ARef<Fence>,
    _module: ModuleRef,
}

impl<F: FnOnce() + Send + 'static> FenceCallback<F> {
    /// Returns an initialiser for an unregistered callback.
    pub fn new(func: F) -> impl PinInit<Self> {
        pin_init!(Self {
            cb: Opaque::uninit(),
            func: Opaque::new(Some(func)),
            registration: None,
        })
    }

    /// Registers the callback on `fence`; `EBUSY` if it is already registered.
    ///
    /// ```
    /// # use dmabuf_lock::{context::MayBlock, fence::{CallbackStatus, FenceCallback, FenceTimeline}};
    /// # let task = MayBlock::new()?;
    /// # let job = FenceTimeline::new().prepare(&task)?.arm();
    /// # let fence = job.fence();
    /// # let mut cb = KBox::pin_init(FenceCallback::new(|| {}), GFP_KERNEL)?;
    /// let status = cb.as_mut().add(fence)?;
    /// assert_eq!(status, CallbackStatus::Registered);
    /// assert_eq!(cb.as_mut().add(fence), Err(EBUSY)); // once only
    /// # job.signal(Ok(()));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn add(self: Pin<&mut Self>, fence: &Fence) -> Result<CallbackStatus> {
        // SAFETY: Only `registration`, which is not structurally pinned, is written through
        // `this`.
        let this = unsafe { self.get_unchecked_mut() };
        if this.registration.is_some() {
            return Err(EBUSY);
        }
        // Everything the registration needs is written before the callback can run: the
        // fence, and the module reference it holds.
        // INVARIANT: `cb` is registered below, or `registration` is unset again.
        this.registration = Some(Registration {
            fence: fence.into(),
            _module: ModuleRef::this_module()?,
        });
        let func: bindings::dma_fence_func_t = Some(Self::trampoline);
        let cb = this.cb.get();
        // SAFETY: `cb` is pinned inside `this` and stays registered at most until `drop`, which
        // removes it; `fence` is initialised (type invariant of `Fence`). `this` is not used
        // while the callback is registered, except to undo a registration that did not happen.
        let ret = unsafe { bindings::dma_fence_add_callback(fence.as_raw(), cb, func) };
        if ret == 0 {
            return Ok(CallbackStatus::Registered);
        }
        // Not registered: the trampoline will never run, and the module reference goes.
        this.registration = None;
        if ret == ENOENT.to_errno() {
            return Ok(CallbackStatus::AlreadySignaled);
        }
        to_result(ret).map(|()| CallbackStatus::Registered)
    }

    /// Removes the callback; returns true if it was registered and had not run.
    ///
    /// ```
    /// # use dmabuf_lock::{context::MayBlock, fence::{FenceCallback, FenceTimeline}};
    /// # use kernel::sync::{atomic::{Atomic, Relaxed}, Arc};
    /// # let task = MayBlock::new()?;
    /// # let job = FenceTimeline::new().prepare(&task)?.arm();
    /// # let runs = Arc::new(Atomic::<u32>::new(0), GFP_KERNEL)?;
    /// # let seen = runs.clone();
    /// # let mut cb = KBox::pin_init(FenceCallback::new(move || seen.add(1, Relaxed)), GFP_KERNEL)?;
    /// # cb.as_mut().add(job.fence())?;
    /// let mut removed = false;
    /// if cb.as_mut().remove() {
    ///     removed = true; // it will never run
    /// }
    /// assert!(removed);
    /// job.signal(Ok(()));
    /// assert_eq!(runs.load(Relaxed), 0);
    /// # Ok::<(), Error>(())
    /// ```
    pub fn remove(self: Pin<&mut Self>) -> bool {
        // SAFETY: Only `registration`, which is not structurally pinned, is changed below.
        let this = unsafe { self.get_unchecked_mut() };
        let Some(registration) = this.registration.take() else {
            return false;
        };
        // SAFETY: `cb` was registered on the fence (type invariant); removing takes the fence
        // lock, under which the trampoline runs, so it is not running afterwards.
        let removed = unsafe {
            bindings::dma_fence_remove_callback(registration.fence.as_raw(), this.cb.get())
        };
        // The trampoline will not run again: the module reference taken in `add` goes with
        // `registration`.
        removed
    }

    /// Runs the callback's function; called by `dma_fence_signal`.
    ///
    /// # Safety
    ///
    /// `cb` is the `cb` field of a live `FenceCallback<F>` registered with [`Self::add`], and the
    /// fence lock is held.
    unsafe extern "C" fn trampoline(
        _fence: *mut bindings::dma_fence,
        cb: *mut bindings::dma_fence_cb,
    ) {
        // SAFETY: `cb` is the `cb` field of a pinned `FenceCallback<F>` registered by `add`,
        // which stays alive until `drop` removes it. Only raw pointers are formed: the owner may
        // hold `&mut Self` (spinning in `remove` for the fence lock) while this runs.
        let this = unsafe { cb.byte_sub(core::mem::offset_of!(Self, cb)).cast::<Self>() };
        // SAFETY: `func` is a field of the live value `this` points to.
        let func = unsafe { Opaque::cast_into(&raw const (*this).func) };
        // SAFETY: The fence lock is held while callbacks run, and the owner touches `func` only
        // through this pointer or after removing the callback under the same lock.
        if let Some(func) = unsafe { (*func).take() } {
            func();
        }
    }
}

#[pinned_drop]
impl<F: FnOnce() + Send + 'static> PinnedDrop for FenceCallback<F> {
    fn drop(mut self: Pin<&mut Self>) {
        self.as_mut().remove();
        // SAFETY: The callback is not registered any more, so nothing else reaches `func`; it
        // was initialised in `new` and is dropped once, here (`Opaque` does not drop it).
        unsafe { core::ptr::drop_in_place(self.func.get()) };
    }
}
