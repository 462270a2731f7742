// SPDX-License-Identifier: GPL-2.0

//! `ww_acquire_init()`, `ww_acquire_done()` and `ww_acquire_fini()` for `reservation_ww_class`.
//!
//! They are static inlines of `<linux/ww_mutex.h>`, which Rust can only reach through a C
//! helper: an out-of-line call, three per job of the locker. Without lock debugging they are
//! five stores (init) and nothing at all (done, fini), so this module writes them in Rust and the
//! locker's paths make no call for them (`scripts/zero-cost helpers`, `make test` cases
//! `zero-cost:acquire-context-no-helper` and `zero-cost:locker-no-helper`). Where the header
//! compiles debugging code into them, by its own conditions (`CONFIG_DEBUG_LOCK_ALLOC`, its
//! `DEBUG_WW_MUTEXES`, `CONFIG_DEBUG_WW_MUTEX_SLOWPATH`), that code stays the header's: each
//! function forwards to its helper in `rust/helpers.c`, which records the Rust caller for lockdep
//! as the C macros record theirs.

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
/// `ctx` is valid for writes and stays where it is while it is in use; it is not in use now
/// (never initialised, or finalised).
#[inline(always)]
pub(super) unsafe fn init(ctx: *mut bindings::ww_acquire_ctx) {
    if HEADER_DEBUG {
        // SAFETY: The caller's guarantees are the helper's.
        unsafe { ffi::dl_ww_acquire_init(ctx) };
        return;
    }
    let class = &raw mut bindings::reservation_ww_class;
    // SAFETY: `reservation_ww_class` is a static of the kernel, initialised at build time; its
    // `stamp` is an `atomic_long_t`, which C too only ever changes atomically.
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
