// SPDX-License-Identifier: GPL-2.0

//! Declarations of the C helpers in `rust/helpers.c`, exported by `dmabuf_lock.ko`.
//!
//! They wrap static inline functions and macros of `<linux/ww_mutex.h>`, `<linux/dma-resv.h>`,
//! `<linux/dma-fence.h>`, `<linux/lockdep.h>` and `<linux/mm.h>` that `kernel::bindings`
//! cannot call. Each has the contract of the C function it forwards to.

#[cfg(CONFIG_LOCKDEP)]
use kernel::bindings::{lockdep_map, mutex, spinlock_t};
use kernel::{
    bindings::{
        device, dma_data_direction, dma_fence, dma_fence_ops, dma_resv, module, page, sg_table,
        vm_fault, ww_acquire_ctx,
    },
    ffi::c_void,
};

// bindgen emits empty structs for some kernel types reached through these pointers (for example
// `sched_statistics` without `CONFIG_SCHEDSTATS`); the kernel's own `bindings` crate allows the lint too.
#[allow(improper_ctypes)]
extern "C" {
    /// `ww_acquire_init(ctx, &reservation_ww_class)`.
    pub(super) fn dl_ww_acquire_init(ctx: *mut ww_acquire_ctx);
    /// `ww_acquire_done(ctx)`.
    pub(super) fn dl_ww_acquire_done(ctx: *mut ww_acquire_ctx);
    /// `ww_acquire_fini(ctx)`.
    pub(super) fn dl_ww_acquire_fini(ctx: *mut ww_acquire_ctx);
    /// `dma_resv_is_locked(obj)`.
    pub(super) fn dl_dma_resv_is_locked(obj: *mut dma_resv) -> bool;
    /// `dma_fence_get(fence)`.
    pub(super) fn dl_dma_fence_get(fence: *mut dma_fence) -> *mut dma_fence;
    /// `dma_fence_put(fence)`.
    pub(super) fn dl_dma_fence_put(fence: *mut dma_fence);
    /// `dma_fence_is_container(fence)`: a `dma_fence_array` or `dma_fence_chain`.
    pub(super) fn dl_dma_fence_is_container(fence: *mut dma_fence) -> bool;
    /// `dma_fence_is_signaled(fence)`.
    pub(super) fn dl_dma_fence_is_signaled(fence: *mut dma_fence) -> bool;
    /// `dma_fence_is_later_or_same(f1, f2)`: both fences of the same context.
    pub(super) fn dl_dma_fence_is_later_or_same(f1: *mut dma_fence, f2: *mut dma_fence) -> bool;
    /// Signals `fence` with `error` (0: none) set first, unless it has signalled already; returns
    /// whether this call signalled it. Any context.
    pub(super) fn dl_dma_fence_signal_error(fence: *mut dma_fence, error: i32) -> bool;
    /// The ops of the library's driver fences, in `dmabuf_lock.ko`: they work only on a
    /// `struct dl_driver_fence` (`fence::DriverFenceStorage`).
    pub(super) static dl_driver_fence_ops: dma_fence_ops;
    /// `THIS_MODULE` of `dmabuf_lock.ko`.
    pub(super) fn dl_core_module() -> *mut module;
    /// `WARN(1, "%s\n", msg)`.
    pub(super) fn dl_warn(msg: *const kernel::ffi::c_char);
    /// `WARN_ONCE(1, "%s\n", msg)`; the once is per call site, i.e. per module using it.
    pub(super) fn dl_warn_once(msg: *const kernel::ffi::c_char);
    /// `might_sleep()`.
    pub(super) fn dl_might_sleep();
    /// `in_atomic() || irqs_disabled()`.
    pub(super) fn dl_in_atomic_context() -> bool;
    /// `vmap(pages, count, VM_MAP, PAGE_KERNEL)`.
    pub(super) fn dl_vmap_pages(pages: *mut *mut page, count: u32) -> *mut c_void;
    /// `vunmap(addr)`.
    pub(super) fn dl_vunmap(addr: *const c_void);
    /// `release_fault_lock(vmf)`: drops the `mmap_lock` (or the vma lock) that a fault handler
    /// was called with.
    pub(super) fn dl_release_fault_lock(vmf: *mut vm_fault);
    /// The largest segment `dev` can map: `dma_max_mapping_size()` and `dma_get_max_seg_size()`,
    /// rounded down to whole pages (at least one).
    pub(super) fn dl_dma_max_segment(dev: *mut device) -> u32;
    /// `dma_unmap_sgtable(dev, sgt, dir, 0)`.
    pub(super) fn dl_dma_unmap_sgtable(
        dev: *mut device,
        sgt: *mut sg_table,
        dir: dma_data_direction,
    );
}

// Lockdep annotations: only called with `CONFIG_LOCKDEP`, where they do something.
#[cfg(CONFIG_LOCKDEP)]
#[allow(improper_ctypes)]
extern "C" {
    /// `might_lock(lock)` for a `struct mutex`.
    pub(super) fn dl_might_lock_mutex(lock: *mut mutex);
    /// `might_lock(lock)` for a `spinlock_t`.
    pub(super) fn dl_might_lock_spinlock(lock: *mut spinlock_t);
    /// `might_lock()` on a reservation's ww_mutex.
    pub(super) fn dl_dma_resv_might_lock(obj: *mut dma_resv);
    /// `lock_map_acquire(map)`, recording the caller.
    pub(super) fn dl_lock_map_acquire(map: *mut lockdep_map);
    /// `lock_map_acquire_read(map)`, recording the caller.
    pub(super) fn dl_lock_map_acquire_read(map: *mut lockdep_map);
    /// `lock_map_release(map)`, recording the caller.
    pub(super) fn dl_lock_map_release(map: *mut lockdep_map);
}
