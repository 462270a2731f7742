// SPDX-License-Identifier: GPL-2.0

//! Fixtures shared by the KUnit suites.

use crate::dmabuf_lock::{context::MayBlock, fence::FenceCallback, resv::OwnedResv};
use kernel::{
    prelude::*,
    sync::{
        atomic::{Atomic, Relaxed},
        Arc,
    },
};

/// A set of reservation objects owned by a test.
pub(crate) type Objects = KVec<Pin<KBox<OwnedResv>>>;

/// Creates `n` unlocked reservation objects.
pub(crate) fn new_resvs(n: usize) -> Result<Objects> {
    let mut v = KVec::with_capacity(n, GFP_KERNEL)?;
    for _ in 0..n {
        v.push(KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?, GFP_KERNEL)?;
    }
    Ok(v)
}

/// The proof that a KUnit case may block: each case runs in a kthread of its own, outside any
/// fence-signalling critical section.
pub(crate) fn task() -> Result<MayBlock> {
    MayBlock::new()
}

/// A shared counter of callback runs.
pub(crate) fn counter() -> Result<Arc<Atomic<u32>>> {
    Ok(Arc::new(Atomic::new(0), GFP_KERNEL)?)
}

/// A fence callback that counts its runs in `calls`.
pub(crate) fn counting_callback(
    calls: &Arc<Atomic<u32>>,
) -> Result<Pin<KBox<FenceCallback<impl FnOnce() + Send + 'static>>>> {
    let c = calls.clone();
    KBox::pin_init(FenceCallback::new(move || c.add(1, Relaxed)), GFP_KERNEL)
}

extern "C" {
    /// `dma_fence_array_create()` (exported; its header is not in the kernel crate's bindings).
    /// Returns the array's fence (its first member), or NULL.
    pub(crate) fn dma_fence_array_create(
        num_fences: i32,
        fences: *mut *mut kernel::bindings::dma_fence,
        context: u64,
        seqno: u32,
    ) -> *mut kernel::bindings::dma_fence;
    /// `THIS_MODULE` of `dmabuf_lock.ko`, where the driver fences' ops live.
    #[allow(improper_ctypes)]
    pub(crate) fn dl_core_module() -> *mut kernel::bindings::module;
    /// `allow_signal(sig)`, exported by `dmabuf_lock.ko`.
    fn dl_allow_signal(sig: i32);
    /// `disallow_signal(sig)`, exported by `dmabuf_lock.ko`.
    fn dl_disallow_signal(sig: i32);
}

/// Makes a signal pending on the current KUnit kthread until the returned value is dropped, so
/// that interruptible waits return `EINTR`.
pub(crate) struct PendingSignal;

impl PendingSignal {
    /// Allows `SIGUSR1` on the current kthread and sends it to itself.
    pub(crate) fn raise() -> Self {
        let sig = kernel::bindings::SIGUSR1 as i32;
        // SAFETY: Allowing a signal and sending it to the current task have no preconditions;
        // both are undone in `drop`.
        unsafe {
            dl_allow_signal(sig);
            kernel::bindings::send_sig(sig, kernel::current!().as_ptr(), 1);
        }
        PendingSignal
    }
}

impl Drop for PendingSignal {
    fn drop(&mut self) {
        // SAFETY: Forgets the signal sent in `raise` and ignores the signal again.
        unsafe {
            kernel::bindings::flush_signals(kernel::current!().as_ptr());
            dl_disallow_signal(kernel::bindings::SIGUSR1 as i32);
        }
    }
}
