// SPDX-License-Identifier: GPL-2.0

//! `ww_acquire_init()`, `ww_acquire_done()` and `ww_acquire_fini()` for `reservation_ww_class`.
//!
//! They are static inlines of `<linux/ww_mutex.h>`, which Rust can only reach through a C
//! helper: an out-of-line call, three per job of the locker. Without lock debugging they are
//! five stores (init) and nothing at all (done, fini), so this module writes them in Rust: on the
//! perf kernel the locker's paths call no project (`dl_`) helper for them (`scripts/zero-cost
//! helpers`, `make test` cases `zero-cost:acquire-context-no-helper` and
//! `zero-cost:locker-no-helper`). Where the kernel's own Rust helpers are not inlined
//! (`CONFIG_RUST_INLINE_HELPERS` off, as on User-Mode Linux), `current` and the atomic increment
//! are still calls. Where the header compiles debugging code into them, by its own conditions
//! (`CONFIG_DEBUG_LOCK_ALLOC`, its `DEBUG_WW_MUTEXES`, `CONFIG_DEBUG_WW_MUTEX_SLOWPATH`), that code
//! stays the header's: each function forwards to its helper in `rust/helpers.c`. The address
//! lockdep records is then not always the Rust caller's: `ww_acquire_init`'s `_RET_IP_` lies in
//! the Rust caller only where the compiler inlines the header's function into the helper, and
//! `ww_acquire_fini`'s `_THIS_IP_` always lies in the helper.

use super::super::ffi;
use kernel::{
    bindings,
    sync::atomic::{Atomic, Relaxed},
    task::Task,
};

/// Whether `<linux/ww_mutex.h>` compiles debugging code into the acquire functions: its
/// `#ifdef`s on `CONFIG_DEBUG_LOCK_ALLOC`, `DEBUG_WW_MUTEXES` (defined for `CONFIG_DEBUG_MUTEXES`,
/// and for `CONFIG_DEBUG_RT_MUTEXES` under `CONFIG_PREEMPT_RT`) and
/// `CONFIG_DEBUG_WW_MUTEX_SLOWPATH`.
const HEADER_DEBUG: bool = cfg!(any(
    CONFIG_DEBUG_LOCK_ALLOC,
    CONFIG_DEBUG_MUTEXES,
    all(CONFIG_PREEMPT_RT, CONFIG_DEBUG_RT_MUTEXES),
    CONFIG_DEBUG_WW_MUTEX_SLOWPATH
));

/// Where the header has no debugging code, [`init`]'s five stores cover the whole context: the
/// fields follow each other without a gap and the last one ends the struct. A header that adds a
/// field there (a stable backport, a new option) fails this build instead of leaving the field
/// uninitialised; `rust/helpers.c` checks the same from C, and that [`HEADER_DEBUG`] is the
/// header's own condition.
const _: () = {
    use core::mem::{offset_of, size_of};
    type Ctx = bindings::ww_acquire_ctx;
    assert!(
        HEADER_DEBUG
            || (offset_of!(Ctx, task) == 0
                && offset_of!(Ctx, stamp) == size_of::<*mut bindings::task_struct>()
                && offset_of!(Ctx, acquired)
                    == offset_of!(Ctx, stamp) + size_of::<kernel::ffi::c_ulong>()
                && offset_of!(Ctx, wounded)
                    == offset_of!(Ctx, acquired) + size_of::<kernel::ffi::c_uint>()
                && offset_of!(Ctx, is_wait_die)
                    == offset_of!(Ctx, wounded) + size_of::<kernel::ffi::c_ushort>()
                && size_of::<Ctx>()
                    == offset_of!(Ctx, is_wait_die) + size_of::<kernel::ffi::c_ushort>())
    );
};

/// `ww_acquire_init(ctx, &reservation_ww_class)`.
///
/// # Safety
///
/// `ctx` is valid for writes, aligned for `ww_acquire_ctx`, and stays where it is while it is in
/// use; it is not in use now (never initialised, or finalised). `Opaque::ffi_init` on a pinned
/// slot provides all of it.
#[inline(always)]
pub(super) unsafe fn init(ctx: *mut bindings::ww_acquire_ctx) {
    if HEADER_DEBUG {
        // SAFETY: The caller's guarantees are the helper's.
        unsafe { ffi::dl_ww_acquire_init(ctx) };
        return;
    }
    let class = &raw mut bindings::reservation_ww_class;
    // SAFETY: `reservation_ww_class` is a static of the kernel, initialised at build time and
    // never freed, so the pointer to its `stamp.counter` is valid for reads and writes for any
    // lifetime, and aligned for its type: it is a `c_long` field of the static's `#[repr(C)]`
    // struct. There is no data race with the atomic increment: every other access of `stamp` is
    // atomic too (C's `atomic_long_*` functions), and Rust reaches the static only through raw
    // pointers, here and for `is_wait_die`, never through a reference or a plain access.
    let stamp = unsafe { Atomic::from_ptr(&raw mut (*class).stamp.counter) }.fetch_add(1, Relaxed);
    // SAFETY: `ctx` is valid for writes (the caller's guarantee); `is_wait_die` of the class is
    // written once, at build time. These are the header's stores when it has no debugging code:
    // the owner, the next stamp of the class, nothing acquired, not wounded, the class's
    // algorithm (an `unsigned int` stored into an `unsigned short`, as C converts it).
    unsafe {
        (*ctx).task = Task::current_raw();
        (*ctx).stamp = stamp.wrapping_add(1) as kernel::ffi::c_ulong;
        (*ctx).acquired = 0;
        (*ctx).wounded = 0;
        (*ctx).is_wait_die = (*class).is_wait_die as kernel::ffi::c_ushort;
    }
}

/// `ww_acquire_done(ctx)`: nothing without lock debugging.
///
/// # Safety
///
/// `ctx` was initialised by [`init`] and not finalised since.
#[inline(always)]
pub(super) unsafe fn done(ctx: *mut bindings::ww_acquire_ctx) {
    if HEADER_DEBUG {
        // SAFETY: The caller's guarantee is the helper's.
        unsafe { ffi::dl_ww_acquire_done(ctx) };
    }
}

/// `ww_acquire_fini(ctx)`: nothing without lock debugging.
///
/// # Safety
///
/// `ctx` was initialised by [`init`] and not finalised since, and holds no lock.
#[inline(always)]
pub(super) unsafe fn fini(ctx: *mut bindings::ww_acquire_ctx) {
    if HEADER_DEBUG {
        // SAFETY: The caller's guarantees are the helper's.
        unsafe { ffi::dl_ww_acquire_fini(ctx) };
    }
}
