// SPDX-License-Identifier: GPL-2.0

//! CPU page faults on mapped buffers: the `mmap` and `vm_operations_struct` generated for an
//! [`Exporter`] that implements [`Exporter::fault`].
//!
//! Such an `mmap` maps nothing: it only sets the vma up (`VM_MIXEDMAP`, `VM_DONTEXPAND`,
//! `VM_DONTDUMP`, the exporter's vm ops). The first access to each page faults, and the fault
//! handler does generically what TTM's does for its buffers: it locks the buffer's reservation
//! under the process's `mmap_lock` (the allowed direction, R1), without sleeping on it while the
//! fault could be retried instead (the fault lock is dropped first, so that the reservation's
//! holder may fault itself), waits for the buffer's kernel-usage fences (moves, R3) the same
//! way, asks the driver for the page with the reservation held (R10) and inserts it before
//! unlocking. An exporter that moves a buffer zaps the user mappings under the same reservation
//! ([`DmaBuf::zap_user_mappings`](super::super::DmaBuf::zap_user_mappings)), so the next access
//! faults and finds the new page.
//!
//! The vma is one that the dma-buf core set up for the buffer: the `mmap` of the dma-buf's file,
//! or `dma_buf_mmap()`, which makes the dma-buf's file the vma's `vm_file` before calling the
//! exporter. So the fault finds the buffer through `vm_file`, and every vma that runs these ops
//! holds a reference on that file (a split, `mremap()` or `fork()` copy takes its own): the
//! dma-buf, its `Exported<T>` and the module whose code these ops are (the dma-buf's owner) live
//! at least as long as the vma. C's rules let no one change `vm_file` after the exporter's
//! `mmap`; the handler still checks that the file is a dma-buf's and that the dma-buf is a `T`
//! before it reads it as one.

use super::{
    super::{
        super::{
            context::MayBlock,
            ffi,
            resv::{FenceUsage, ResvHeld},
        },
        DmaBuf,
    },
    Exporter,
};
use core::ptr;
use kernel::{
    bindings,
    error::code::{EBUSY, EINTR, ENOMEM, ERESTARTSYS},
    mm::virt::{VmaNew, VmaRef},
    page::PAGE_SIZE,
    prelude::*,
    sync::{
        aref::ARef,
        atomic::{Atomic, Relaxed},
    },
    task::Task,
    time::Msecs,
};

/// The vm ops of exporter `T`'s mappings: only `fault` (none without [`Exporter::fault`], whose
/// default must not be referenced). No `open` or `close`: each vma holds its own reference on
/// the dma-buf's file, which is all the buffer needs.
pub(super) const fn vm_ops<T: Exporter>() -> bindings::vm_operations_struct {
    // SAFETY: Every field of `vm_operations_struct` is an `Option` of a function pointer, for
    // which all-zero is `None`.
    let none: bindings::vm_operations_struct = unsafe { core::mem::zeroed() };
    bindings::vm_operations_struct {
        fault: if T::HAS_FAULT { Some(fault::<T>) } else { None },
        ..none
    }
}

/// The `file_operations` of every dma-buf's file (the dma-buf core's `dma_buf_fops`, which it
/// does not export), recorded by [`mmap`] from a dma-buf the core passed: a file with these ops
/// is a dma-buf's, and its private data is that `dma_buf`. NULL until the first `mmap`, which
/// stores it before it installs the vm ops, under the `mmap_lock` that a fault on that vma
/// takes after it: `Relaxed` is enough. Only the dma-buf core calls `mmap` (its contract), so
/// nothing else is ever stored.
static DMA_BUF_FOPS: Atomic<*const bindings::file_operations> = Atomic::new(ptr::null());

/// `.mmap` of an exporter with `fault`: sets the vma up for faults and maps nothing. A private
/// writable (copy-on-write) mapping is `EINVAL`, as in TTM: a write would copy the buffer's
/// page into an anonymous one, which the buffer never sees.
///
/// The vma's `vm_private_data` is left to the caller: an importer that maps its own object with
/// `dma_buf_mmap()` may set it afterwards (DRM's `drm_gem_prime_mmap()` does).
///
/// # Safety
///
/// Called by the dma-buf core only, for a buffer exported with `T`'s ops, as the op's contract
/// in `<linux/dma-buf.h>` says.
pub(super) unsafe extern "C" fn mmap<T: Exporter>(
    dmabuf: *mut bindings::dma_buf,
    vma: *mut bindings::vm_area_struct,
) -> c_int {
    // SAFETY: The core passes a live dma-buf, whose `file` is set at export and never changes,
    // and a vma being set up for it, under `mmap_lock` held for writing: the `mmap` of the
    // dma-buf's file, or `dma_buf_mmap()`, which has made that file the vma's `vm_file`.
    let (file, vm_file) = unsafe { ((*dmabuf).file, (*vma).vm_file) };
    if !ptr::eq(file, vm_file) {
        return EINVAL.to_errno();
    }
    // SAFETY: `file` is the dma-buf's, live while the dma-buf is; its ops never change.
    DMA_BUF_FOPS.store(unsafe { (*file).f_op }, Relaxed);
    // SAFETY: As above: the vma is being set up, with the dma-buf's file as its `vm_file`.
    let vma = unsafe { VmaNew::from_raw(vma) };
    let flags = vma.flags();
    if flags & (bindings::VM_SHARED | bindings::VM_MAYWRITE) == bindings::VM_MAYWRITE {
        return EINVAL.to_errno();
    }
    // `vm_insert_page()` wants `VM_MIXEDMAP` set before the first fault (it sets it itself only
    // with `mmap_lock` held for writing). The buffer has a fixed size: no growing `mremap()`.
    let _ = vma.set_mixedmap();
    vma.set_dontexpand();
    vma.set_dontdump();
    // SAFETY: The vma is not visible to any other task yet (`VmaNew`), and the ops are a
    // `static`'s, with `fault` set to the handler for `T`, which is what the vma's `vm_file`
    // (the dma-buf's) was exported with.
    unsafe { (*vma.as_ptr()).vm_ops = T::OPS.vm_ops() };
    0
}

/// What a fault handler returns: `VM_FAULT_*` bits.
type Ret = bindings::vm_fault_t;

const NOPAGE: Ret = bindings::vm_fault_reason_VM_FAULT_NOPAGE;
const RETRY: Ret = bindings::vm_fault_reason_VM_FAULT_RETRY;
const SIGBUS: Ret = bindings::vm_fault_reason_VM_FAULT_SIGBUS;
const OOM: Ret = bindings::vm_fault_reason_VM_FAULT_OOM;

/// Waits in effect without a limit (about 49 days): the fences of a buffer's moves signal in
/// bounded time (R8), and every wait here is interruptible.
const FOREVER: Msecs = Msecs::MAX;

/// A fault being handled, as far as the handler reads it.
struct Fault {
    vmf: *mut bindings::vm_fault,
    flags: bindings::fault_flag,
    pgoff: usize,
    address: usize,
}

impl Fault {
    /// Whether the fault may be retried and this is its first try: the handler may then drop
    /// the fault lock, wait, and return `VM_FAULT_RETRY` (`fault_flag_allow_retry_first()`).
    ///
    /// Only for a user task that is not exiting: the wait holds its own reference on the
    /// dma-buf, which may be the last one when it is dropped, and only such a task's `fput()`
    /// defers the release to its return to user space, after the handler. A kernel thread's
    /// (a KVM async page fault, a driver's `get_user_pages_remote()`) or an exiting task's goes
    /// to a work item that another CPU may run while the handler still holds `&T` and runs
    /// this module's code; those wait with the fault lock held instead, under the vma's
    /// reference.
    fn may_retry(&self) -> bool {
        // SAFETY: The current task is live; `flags` is read as the kernel's `current->flags`.
        let task_flags = unsafe { (*Task::current_raw()).flags };
        self.flags & bindings::fault_flag_FAULT_FLAG_ALLOW_RETRY != 0
            && self.flags & bindings::fault_flag_FAULT_FLAG_TRIED == 0
            && task_flags & (bindings::PF_KTHREAD | bindings::PF_EXITING) == 0
    }

    /// Whether a retry must not drop the fault lock (`FAULT_FLAG_RETRY_NOWAIT`): the caller
    /// only wants to know that the fault would wait.
    fn nowait(&self) -> bool {
        self.flags & bindings::fault_flag_FAULT_FLAG_RETRY_NOWAIT != 0
    }

    /// Drops the fault lock and returns a reference on the dma-buf taken before that, which
    /// keeps the buffer alive for the wait that follows: from here on the vma may be gone.
    ///
    /// # Safety
    ///
    /// The fault may be retried ([`Fault::may_retry`], not [`Fault::nowait`]), the handler
    /// returns `VM_FAULT_RETRY` next, and it touches nothing borrowed from the vma (`buf`
    /// included) any more: only the returned reference.
    unsafe fn release(&self, buf: &DmaBuf) -> ARef<DmaBuf> {
        let pinned = ARef::from(buf);
        // SAFETY: The handler was called with the fault lock held and gives it up here, as a
        // retryable fault without `RETRY_NOWAIT` must before returning `VM_FAULT_RETRY`.
        unsafe { ffi::dl_release_fault_lock(self.vmf) };
        pinned
    }
}

/// `.fault`: locks the reservation, waits for kernel-usage fences, inserts the driver's page.
///
/// # Safety
///
/// Called by the core mm only, for a fault on a vma whose ops are `T`'s (set by [`mmap`]),
/// with the fault lock held (`mmap_lock`, or the vma's lock).
unsafe extern "C" fn fault<T: Exporter>(vmf: *mut bindings::vm_fault) -> Ret {
    // SAFETY: The core passes the fault it handles, readable for the call.
    let (v, flags) = unsafe { ((*vmf).__bindgen_anon_1, (*vmf).flags) };
    let vma = v.vma;
    let fault = Fault {
        vmf,
        flags,
        pgoff: v.pgoff,
        address: v.address,
    };
    // SAFETY: The vma is live while the fault lock is held. `mmap` set these ops on a vma with
    // a `vm_file`, which is cleared only on the error path of an `mmap` (before the vma is
    // published); the vma holds a reference on the file, whose ops are set when it is made
    // (a dma-buf's file is never opened, so no `replace_fops()` runs on it).
    let (file, f_op) = unsafe {
        let file = (*vma).vm_file;
        (file, (*file).f_op)
    };
    // The dma-buf core makes `vm_file` the dma-buf's file, and C's rules let no one change it
    // afterwards. As hardening against a caller that did anyway, a file that is not a dma-buf
    // of `T`'s is refused rather than read as one (the lifetime of this module's code still
    // rests on that rule: the vma holds only the file it has).
    if !ptr::eq(f_op, DMA_BUF_FOPS.load(Relaxed)) {
        return SIGBUS;
    }
    // SAFETY: A file with the dma-buf core's file ops is a dma-buf's, whose private data is set
    // to the `dma_buf` before the file can be reached and never changes; the `dma_buf` is freed
    // only after the file's last reference is gone, and the vma's reference keeps it while
    // the fault lock is held; `buf` is not used after `Fault::release` drops that lock.
    let buf = unsafe { DmaBuf::from_raw((*file).private_data.cast::<bindings::dma_buf>()) };
    // Exported with `T`'s ops and as a `T` (its ops alone could be another type's, merged).
    let Ok(data) = buf.exported_data::<T>() else {
        return SIGBUS;
    };
    // SAFETY: The vma is live under the fault lock, which is held until `Fault::release`; `vma`
    // is not used after it.
    let vma = unsafe { VmaRef::from_raw(vma) };
    handle(&fault, buf, vma, data)
}

/// The handler's work, with the buffer and the vma borrowed under the fault lock.
fn handle<T: Exporter>(fault: &Fault, buf: &DmaBuf, vma: &VmaRef, data: &T) -> Ret {
    if fault.pgoff >= buf.size() / PAGE_SIZE {
        return SIGBUS;
    }
    // A fault comes from a user access or a user copy, in process context; one inside a
    // fence-signalling section (R4) is refused rather than allowed to wait on the reservation.
    let Ok(task) = MayBlock::new() else {
        return SIGBUS;
    };
    let resv = buf.resv();
    let guard = match resv.try_lock(&task) {
        Some(guard) => guard,
        None if fault.may_retry() => {
            if !fault.nowait() {
                // Whoever holds the reservation may be faulting on this process's memory
                // itself: wait for it without the fault lock, then let the fault start over.
                // SAFETY: Retryable without `RETRY_NOWAIT`; only `buf` below, through `pinned`.
                let pinned = unsafe { fault.release(buf) };
                drop(pinned.resv().lock_interruptible(&task));
            }
            return RETRY;
        }
        None => match resv.lock_interruptible(&task) {
            Ok(guard) => guard,
            // A signal: back to userspace, which takes it and faults again. A fault that may
            // not be retried can also come from `get_user_pages()` or a kernel thread, which
            // fault again at once with a signal pending that is not fatal: a spin until the
            // holder unlocks, bounded by its critical section, as in TTM's handler.
            Err(_) => return NOPAGE,
        },
    };
    // Moves of the buffer are kernel-usage fences: the page is where they leave it.
    if !resv.test_signaled(FenceUsage::Kernel) {
        if fault.may_retry() {
            drop(guard);
            if !fault.nowait() {
                // SAFETY: Retryable without `RETRY_NOWAIT`; only `buf` below, through `pinned`.
                let pinned = unsafe { fault.release(buf) };
                let _ = pinned.resv().wait(&task, FenceUsage::Kernel, true, FOREVER);
            }
            return RETRY;
        }
        match resv.wait(&task, FenceUsage::Kernel, true, FOREVER) {
            Ok(true) => {}
            Ok(false) => return SIGBUS,
            Err(e) if e == EINTR || e == ERESTARTSYS => return NOPAGE,
            Err(_) => return SIGBUS,
        }
    }
    let ret = {
        // SAFETY: `guard` holds the reservation on this task and outlives `held` (this block);
        // nothing unlocks it meanwhile, and the guard is not used while `held` lives.
        let mut held = unsafe { ResvHeld::new(resv) };
        match data.fault(&mut held, fault.pgoff) {
            Ok(page) => insert(vma, fault.address, page),
            Err(e) if e == ENOMEM => OOM,
            Err(_) => SIGBUS,
        }
    };
    // The page is in the page table before the reservation is unlocked: a move, which zaps
    // the mappings under it, comes either before this fault or after the insertion.
    drop(guard);
    ret
}

/// Inserts `page` at `address` (`vmf_insert_page()`): an entry that another fault inserted
/// meanwhile (`EBUSY`) is as good.
fn insert(vma: &VmaRef, address: usize, page: &kernel::page::Page) -> Ret {
    let Some(mixed) = vma.as_mixedmap_vma() else {
        return SIGBUS;
    };
    match mixed.vm_insert_page(address, page) {
        Ok(()) => NOPAGE,
        Err(e) if e == EBUSY => NOPAGE,
        Err(e) if e == ENOMEM => OOM,
        Err(_) => SIGBUS,
    }
}
