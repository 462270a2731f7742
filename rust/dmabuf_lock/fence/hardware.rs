// SPDX-License-Identifier: GPL-2.0

//! A driver's own fence ops: `signaled` and `enable_signaling` read its hardware (R8).
//!
//! A GPU writes a job's sequence number to memory when the job is done, and raises its
//! completion interrupt. Between the two, `dma_fence_is_signaled()` can already say "done" by
//! reading that seqno (the `signaled` op), and a waiter asks the driver to make sure the
//! interrupt will come (`enable_signaling`). A driver describes this with [`FenceHardware`];
//! [`FenceTimeline::with_hardware`] makes a timeline whose fences get `dma_fence_ops` generated
//! for it.
//!
//! What the hooks may rely on, and why it is sound:
//!
//! * The hardware is `&'static`: it lives as long as the module's data (a `static`, or memory
//!   leaked for good). The ops are code of the module that made the timeline: each fence pins
//!   that module from `prepare` until it signals, and Linux 7.3 forgets a fence's ops when it
//!   signals (they have no `release` and no `wait`). A caller that fetched the ops just before
//!   the signal calls them under `rcu_read_lock()`, and a module's memory is freed only after
//!   an RCU grace period (`free_module()`), which covers the generated op up to its call of the
//!   hook. The op then takes a module reference of its own for the hook's call (`EBUSY` or
//!   `ENODEV`: the module is going and the fence signalled, and the op answers without the
//!   hook), so that a hook that sleeps, which ends the RCU read-side critical section on a
//!   kernel without preemptible RCU, still runs on code and data that are not freed. What runs
//!   after that reference is dropped runs without sleeping, inside the caller's RCU reader
//!   again.
//! * The fence memory the hooks read (names, the hardware pointer) is the fence's own, freed
//!   with `kfree_rcu` after its last reference; every caller of the ops holds one.
//! * `signaled` may signal the fence from `dma_fence_is_signaled()`, before the driver does:
//!   [`DriverFence::signal`](super::DriverFence::signal) then finds it signalled and leaves it as it is (the error is not
//!   set after the fact), under the fence's lock.
//! * The hooks run with or without the fence's lock held, possibly with interrupts off: they
//!   must not sleep, allocate or take the fence's lock. [`FenceHardware`] gives them `&self` and
//!   a sequence number only; hardware that keeps its own fences could still reach one and
//!   deadlock on its lock (see [`FenceHardware`]). Neither is undefined behaviour.

use super::{ffi, DriverFenceStorage, FenceNames, FenceTimeline, ModuleRef};
use core::{ffi::c_void, marker::PhantomData, ptr};
use kernel::{bindings, error::code::EINVAL, prelude::*, sync::atomic::Atomic};

/// How a driver's hardware tells that a fence's job is done: the `signaled` and
/// `enable_signaling` ops of the fences of a [`FenceTimeline::with_hardware`] timeline.
///
/// Both run in any context (interrupts off, the fence's lock held or not): they must not sleep,
/// allocate, or take a lock that is held while a fence is signalled. A lockdep-checked kernel
/// reports what breaks this (`might_sleep()` only with `PREEMPT_COUNT`).
///
/// They must not reach their own fence either: they get `&self` and a seqno, not the fence, but
/// hardware that keeps a [`DriverFence`](super::DriverFence) or an `ARef<Fence>` could hand it to
/// them. `enable_signaling` runs under the fence's lock, which signalling the fence or asking
/// `is_signaled()` of it takes again: a deadlock.
///
/// Breaking these rules is a bug, not undefined behaviour: each call of a hook holds a reference
/// on the module of its code, so a hook that sleeps (out of the RCU read-side critical section
/// its caller relies on) still cannot see its module freed under it.
///
/// # Examples
///
/// ```
/// use dmabuf_lock::{context::MayBlock, fence::{FenceHardware, FenceTimeline}};
/// use kernel::sync::atomic::{Acquire, Atomic, Release};
///
/// /// A ring whose engine writes the seqno of each job it finishes, in order.
/// struct Ring {
///     completed: Atomic<u64>,
/// }
///
/// impl FenceHardware for Ring {
///     fn signaled(&self, seqno: u64) -> bool {
///         // Acquire, paired with the engine's release of the seqno: whoever learns here that
///         // the job is done sees what the job wrote before it.
///         self.completed.load(Acquire) >= seqno
///     }
/// }
///
/// static RING: Ring = Ring { completed: Atomic::new(0) };
///
/// # let task = MayBlock::new()?;
/// let timeline = FenceTimeline::with_hardware(c"my_gpu", c"my_gpu-ring0", &RING)?;
/// let job = timeline.prepare(&task)?.arm();
/// assert!(!job.fence().is_signaled());
/// RING.completed.store(job.fence().seqno(), Release); // the engine finished the job
/// assert!(job.fence().is_signaled()); // seen before the interrupt signals it
/// job.signal(Ok(())); // the interrupt handler's signal: already done, nothing changes
/// # Ok::<(), Error>(())
/// ```
pub trait FenceHardware: Sync + 'static {
    /// Whether the hardware has finished the job of the fence with sequence number `seqno`
    /// (the `signaled` op). `true` signals the fence at once; it must stay `true` from then on.
    fn signaled(&self, seqno: u64) -> bool;

    /// Someone waits for the fence with sequence number `seqno` (the `enable_signaling` op, once
    /// per fence, with the fence's lock held): make sure its completion will be signalled, for
    /// example by unmasking the completion interrupt. Returns `false` if the job is done already
    /// (the fence is then signalled at once). By default, `!self.signaled(seqno)`.
    ///
    /// ```
    /// # use dmabuf_lock::{context::MayBlock, fence::{FenceHardware, FenceTimeline}};
    /// # use kernel::sync::atomic::{Atomic, Relaxed};
    /// struct Engine {
    ///     irq_enabled: Atomic<u32>,
    /// }
    ///
    /// impl FenceHardware for Engine {
    ///     fn signaled(&self, _seqno: u64) -> bool {
    ///         false
    ///     }
    ///
    ///     fn enable_signaling(&self, _seqno: u64) -> bool {
    ///         self.irq_enabled.store(1, Relaxed); // unmask the completion interrupt
    ///         true
    ///     }
    /// }
    ///
    /// static ENGINE: Engine = Engine { irq_enabled: Atomic::new(0) };
    /// # let task = MayBlock::new()?;
    /// let timeline = FenceTimeline::with_hardware(c"my_gpu", c"my_gpu-copy", &ENGINE)?;
    /// let job = timeline.prepare(&task)?.arm();
    /// assert_eq!(job.fence().wait(&task, false, 1), Ok(false)); // a waiter enables signalling
    /// assert_eq!(ENGINE.irq_enabled.load(Relaxed), 1);
    /// # job.signal(Ok(()));
    /// # Ok::<(), Error>(())
    /// ```
    fn enable_signaling(&self, seqno: u64) -> bool {
        !self.signaled(seqno)
    }
}

impl FenceTimeline {
    /// Returns a timeline named like [`FenceTimeline::with_names`] whose fences ask `hw` whether
    /// they are done ([`FenceHardware`]); `EINVAL` if a name is too long.
    ///
    /// ```
    /// # use dmabuf_lock::{context::MayBlock, fence::{FenceHardware, FenceTimeline}};
    /// struct Hung;
    ///
    /// impl FenceHardware for Hung {
    ///     fn signaled(&self, _seqno: u64) -> bool {
    ///         false // never done on its own: the driver signals (or times out) the fence
    ///     }
    /// }
    ///
    /// static HUNG: Hung = Hung;
    /// # let task = MayBlock::new()?;
    /// let timeline = FenceTimeline::with_hardware(c"my_gpu", c"my_gpu-ring1", &HUNG)?;
    /// let job = timeline.prepare(&task)?.arm();
    /// job.signal(Err(ETIMEDOUT));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn with_hardware<H: FenceHardware>(
        driver: &CStr,
        timeline: &CStr,
        hw: &'static H,
    ) -> Result<Self> {
        Ok(Self {
            next_seqno: Atomic::new(1),
            names: FenceNames::new(driver, timeline).ok_or(EINVAL)?,
            // INVARIANT: The ops generated for `H`, code of this module, with the `&'static H`
            // they read.
            ops: FenceOps {
                table: HwOps::<H>::TABLE,
                hw: HwRef(ptr::from_ref(hw).cast()),
                in_this_module: true,
            },
        })
    }
}

/// The hardware behind a driver fence, as the fence's memory holds it: a `&'static H` with its
/// type erased (NULL for the library's ops, which read none).
///
/// # Invariants
///
/// The pointer is NULL or comes from a `&'static H` where `H: FenceHardware`; which `H` is
/// recorded by the ops it is paired with in [`FenceOps`].
#[repr(transparent)]
#[derive(Clone, Copy)]
pub(super) struct HwRef(*const c_void);

// SAFETY: It is a shared reference to a `FenceHardware`, which is `Sync`, or NULL.
unsafe impl Send for HwRef {}

// SAFETY: As above; it is only read.
unsafe impl Sync for HwRef {}

/// The ops of a timeline's fences, and where their code lives.
///
/// # Invariants
///
/// `table` is `dl_driver_fence_ops` of `dmabuf_lock.ko` and `hw` NULL, with `in_this_module`
/// false; or `table` is `HwOps::<H>::TABLE`, code of the module this library is compiled into,
/// and `hw` a `&'static H`, with `in_this_module` true.
#[derive(Clone, Copy)]
pub(super) struct FenceOps {
    pub(super) table: *const bindings::dma_fence_ops,
    pub(super) hw: HwRef,
    in_this_module: bool,
}

// SAFETY: The table is immutable `'static` data and `hw` is `Send` and `Sync`.
unsafe impl Send for FenceOps {}

// SAFETY: As above.
unsafe impl Sync for FenceOps {}

impl FenceOps {
    /// The library's ops, with the names only.
    // INVARIANT: The library's table, no hardware.
    pub(super) const LIBRARY: Self = Self {
        table: &raw const ffi::dl_driver_fence_ops,
        hw: HwRef(ptr::null()),
        in_this_module: false,
    };

    /// Takes a reference on the module that holds the ops' code, for one fence.
    pub(super) fn module(&self) -> Result<ModuleRef> {
        if self.in_this_module {
            ModuleRef::this_module()
        } else {
            Ok(ModuleRef::core())
        }
    }
}

/// The `dma_fence_ops` generated for a [`FenceHardware`] type.
struct HwOps<H>(PhantomData<H>);

impl<H: FenceHardware> HwOps<H> {
    /// The table: promoted to a `static` of the module that instantiates it.
    const TABLE: &'static bindings::dma_fence_ops = &bindings::dma_fence_ops {
        get_driver_name: Some(driver_name),
        get_timeline_name: Some(timeline_name),
        enable_signaling: Some(Self::enable_signaling),
        signaled: Some(Self::signaled),
        wait: None,
        release: None,
        set_deadline: None,
    };

    /// The hardware of a fence of a `with_hardware::<H>` timeline.
    ///
    /// # Safety
    ///
    /// `fence` is the `base` of a live `DriverFenceStorage` armed with these ops.
    unsafe fn hw<'a>(fence: *mut bindings::dma_fence) -> &'a H {
        // SAFETY: The caller guarantees the storage; fences with these ops were prepared by a
        // timeline of `with_hardware::<H>`, whose `hw` is a `&'static H` (`FenceOps`).
        unsafe { &*(*fence.cast::<DriverFenceStorage>()).hw.0.cast::<H>() }
    }

    /// The `signaled` op. Without a module reference (the module is going, which an
    /// unsignalled fence prevents: the fence has signalled just now) it answers "not done":
    /// the fence's signalled flag says the rest.
    ///
    /// # Safety
    ///
    /// Called by the dma-fence core on a live fence with these ops.
    unsafe extern "C" fn signaled(fence: *mut bindings::dma_fence) -> bool {
        let Ok(_module) = ModuleRef::this_module() else {
            return false;
        };
        // SAFETY: The core calls the op on a live fence of ours; `seqno` never changes.
        let (hw, seqno) = unsafe { (Self::hw(fence), (*fence).seqno) };
        hw.signaled(seqno)
    }

    /// The `enable_signaling` op. Without a module reference (see `signaled`) it answers "will
    /// signal": the fence has.
    ///
    /// # Safety
    ///
    /// Called by the dma-fence core on a live fence with these ops, its lock held.
    unsafe extern "C" fn enable_signaling(fence: *mut bindings::dma_fence) -> bool {
        let Ok(_module) = ModuleRef::this_module() else {
            return true;
        };
        // SAFETY: As in `signaled`.
        let (hw, seqno) = unsafe { (Self::hw(fence), (*fence).seqno) };
        hw.enable_signaling(seqno)
    }
}

/// The `get_driver_name` op: the name in the fence's own memory.
///
/// # Safety
///
/// `fence` is the `base` of a live `DriverFenceStorage`.
unsafe extern "C" fn driver_name(fence: *mut bindings::dma_fence) -> *const kernel::ffi::c_char {
    // SAFETY: The caller guarantees the storage; the names never change after `prepare`.
    unsafe {
        (*fence.cast::<DriverFenceStorage>())
            .names
            .driver
            .as_ptr()
            .cast()
    }
}

/// The `get_timeline_name` op.
///
/// # Safety
///
/// As [`driver_name`].
unsafe extern "C" fn timeline_name(fence: *mut bindings::dma_fence) -> *const kernel::ffi::c_char {
    // SAFETY: As in `driver_name`.
    unsafe {
        (*fence.cast::<DriverFenceStorage>())
            .names
            .timeline
            .as_ptr()
            .cast()
    }
}
