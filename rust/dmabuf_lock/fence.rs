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

use super::ffi;
use core::ptr::{self, NonNull};
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
/// (KUnit case `dmabuf_lock_fence::driver_fence_signals_once`.)
///
/// ```ignore
/// let fence: ARef<Fence> = driver_fence.fence().into();
/// assert!(!fence.is_signaled());
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
    /// ```ignore
    /// if fence.is_signaled() { /* the work is done */ }
    /// ```
    pub fn is_signaled(&self) -> bool {
        // SAFETY: The fence is initialised by the type invariant.
        unsafe { ffi::dl_dma_fence_is_signaled(self.as_raw()) }
    }

    /// Returns the fence's status: `Ok(false)` while pending, `Ok(true)` once signalled without
    /// error, and the error it was signalled with otherwise.
    ///
    /// ```ignore
    /// assert_eq!(fence.status(), Err(ECANCELED));
    /// ```
    pub fn status(&self) -> Result<bool> {
        // SAFETY: The fence is initialised by the type invariant.
        let ret = unsafe { bindings::dma_fence_get_status(self.as_raw()) };
        to_result(ret).map(|()| ret == 1)
    }

    /// Returns the fence context (the timeline) this fence belongs to.
    ///
    /// ```ignore
    /// assert_eq!(fence.context(), timeline.context());
    /// ```
    pub fn context(&self) -> u64 {
        // SAFETY: `context` is set at initialisation and never changes.
        unsafe { (*self.as_raw()).context }
    }

    /// Returns the fence's sequence number on its timeline.
    ///
    /// ```ignore
    /// assert!(second.seqno() > first.seqno());
    /// ```
    pub fn seqno(&self) -> u64 {
        // SAFETY: `seqno` is set at initialisation and never changes.
        unsafe { (*self.as_raw()).seqno }
    }

    /// Waits up to `timeout_ms` for the fence to signal: `Ok(true)` if it did, `Ok(false)` on
    /// time-out, `EINTR` if `interruptible` and a signal arrived. Allowed under a reservation
    /// (R3), never inside a signalling section (R4).
    ///
    /// ```ignore
    /// if !fence.wait(true, 100)? { return Err(ETIMEDOUT); }
    /// ```
    pub fn wait(&self, interruptible: bool, timeout_ms: Msecs) -> Result<bool> {
        let (fence, timeout) = (self.as_raw(), jiffies_timeout(timeout_ms));
        // SAFETY: The fence is initialised by the type invariant.
        let ret = unsafe { bindings::dma_fence_wait_timeout(fence, interruptible, timeout) };
        wait_result(ret)
    }
}

/// Converts milliseconds to the signed jiffies timeout of the fence wait functions.
pub(crate) fn jiffies_timeout(timeout_ms: Msecs) -> kernel::ffi::c_long {
    kernel::ffi::c_long::try_from(msecs_to_jiffies(timeout_ms)).unwrap_or(kernel::ffi::c_long::MAX)
}

/// Interprets the return value of a fence wait: remaining jiffies, 0 on time-out, or an errno.
pub(crate) fn wait_result(ret: kernel::ffi::c_long) -> Result<bool> {
    match ret {
        0 => Ok(false),
        r if r > 0 => Ok(true),
        r => Err(Error::from_errno(
            i32::try_from(r).unwrap_or(EINVAL.to_errno()),
        )),
    }
}

/// A timeline of driver fences: one fence context and increasing sequence numbers.
///
/// ```ignore
/// let timeline = FenceTimeline::new();
/// let fence = timeline.create_fence()?;
/// ```
pub struct FenceTimeline {
    context: u64,
    next_seqno: Atomic<u64>,
}

impl Default for FenceTimeline {
    fn default() -> Self {
        Self::new()
    }
}

impl FenceTimeline {
    /// Allocates a new fence context.
    pub fn new() -> Self {
        // SAFETY: `dma_fence_context_alloc` has no preconditions.
        let context = unsafe { bindings::dma_fence_context_alloc(1) };
        Self {
            context,
            next_seqno: Atomic::new(1),
        }
    }

    /// Returns the fence context number.
    ///
    /// ```ignore
    /// assert_eq!(fence.fence().context(), timeline.context());
    /// ```
    pub fn context(&self) -> u64 {
        self.context
    }

    /// Creates the next unsignalled fence of this timeline. It allocates with `GFP_KERNEL`, so
    /// call it before entering a signalling section (R4).
    pub fn create_fence(&self) -> Result<DriverFence> {
        let storage = KBox::new(Opaque::<bindings::dma_fence>::uninit(), GFP_KERNEL)?;
        let raw = KBox::into_raw(storage).cast::<bindings::dma_fence>();
        let seqno = self.next_seqno.fetch_add(1, Relaxed);
        // SAFETY: `raw` is a fresh allocation of the right size; a NULL lock selects the fence's
        // inline lock. The memory came from kmalloc, which `dma_fence_free` (the default release,
        // as `DRIVER_FENCE_OPS.release` is unset) hands back with kfree_rcu.
        unsafe {
            bindings::dma_fence_init(raw, &DRIVER_FENCE_OPS, ptr::null_mut(), self.context, seqno)
        };
        // SAFETY: `dma_fence_init` set the refcount to 1, which the new `ARef` owns.
        let fence = unsafe { ARef::from_raw(NonNull::new_unchecked(raw.cast::<Fence>())) };
        Ok(DriverFence { fence })
    }
}

extern "C" fn driver_name(_fence: *mut bindings::dma_fence) -> *const kernel::ffi::c_char {
    c"dmabuf_lock".as_char_ptr()
}

extern "C" fn timeline_name(_fence: *mut bindings::dma_fence) -> *const kernel::ffi::c_char {
    c"dmabuf_lock-timeline".as_char_ptr()
}

static DRIVER_FENCE_OPS: bindings::dma_fence_ops = bindings::dma_fence_ops {
    get_driver_name: Some(driver_name),
    get_timeline_name: Some(timeline_name),
    enable_signaling: None,
    signaled: None,
    wait: None,
    release: None,
    set_deadline: None,
};

/// A fence this driver has published and must signal (R8).
///
/// Signal it with [`DriverFence::signal`], which consumes it, so it cannot signal twice. If it is
/// dropped unsignalled, it is signalled with `-ECANCELED` and a warning, so no waiter hangs.
///
/// # Examples
///
/// (KUnit case `dmabuf_lock_fence::driver_fence_signals_once`.)
///
/// ```ignore
/// let job_fence = timeline.create_fence()?;
/// guard.add_fence(job_fence.fence(), FenceUsage::Write)?;
/// job_fence.signal(Ok(()));
/// ```
pub struct DriverFence {
    fence: ARef<Fence>,
}

impl DriverFence {
    /// Returns the fence, to publish it (add it to a reservation, hand out a reference).
    pub fn fence(&self) -> &Fence {
        &self.fence
    }

    /// Signals the fence, setting `result`'s error on it first.
    pub fn signal(self, result: Result) {
        self.signal_with(result);
    }

    fn signal_with(&self, result: Result) {
        let raw = self.fence.as_raw();
        if let Err(e) = result {
            // SAFETY: The fence is initialised and not yet signalled: only this type signals it,
            // and it does so once, consuming itself or in `drop`.
            unsafe { ffi::dl_dma_fence_set_error(raw, e.to_errno()) };
        }
        // SAFETY: The fence is initialised; signalling it the first time is what it is for.
        unsafe { bindings::dma_fence_signal(raw) };
    }
}

impl Drop for DriverFence {
    fn drop(&mut self) {
        if !self.fence.is_signaled() {
            pr_warn!(
                "dmabuf_lock: fence {}:{} dropped unsignalled; signalling -ECANCELED\n",
                self.fence.context(),
                self.fence.seqno()
            );
            self.signal_with(Err(ECANCELED));
        }
    }
}
