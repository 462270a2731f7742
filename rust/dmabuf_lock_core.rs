// SPDX-License-Identifier: GPL-2.0

//! `dmabuf_lock.ko`: the library core.
//!
//! It exports the C helpers (`rust/helpers.c`) that every other module of the project calls, so
//! it is loaded first. Loading it primes lockdep with the dma-buf core order (the chain the
//! kernel's own `dma_resv_lockdep()` primes at boot, through this library's priming API, plus
//! waiting for fences under a reservation, R3) and lists what it primed in
//! `/sys/kernel/debug/dmabuf_lock/primed_orders`. Loading it again fails with `EEXIST`, like any
//! module; without `CONFIG_LOCKDEP` nothing is primed and the file says so.
//!
//! The file is made with the C debugfs API rather than `kernel::debugfs`: Linux 7.3's Rust
//! debugfs builds its `file_operations` without `.owner`, so an open file would not pin the
//! module, and closing it after an unload would run freed code (README, "Known issues"). Here
//! the file operations name this module as their owner: while the file is open, the module
//! cannot be unloaded.
//!
//! The library itself is source shared by all modules: see `rust/dmabuf_lock/mod.rs`.

use core::ptr::{self, NonNull};
use kernel::{bindings, error::from_err_ptr, fmt, prelude::*, seq_file::SeqFile, seq_print};

#[path = "dmabuf_lock/mod.rs"]
pub mod dmabuf_lock;

use dmabuf_lock::{
    context::MayBlock,
    lockdep::{Level, LockOrder},
};

module! {
    type: DmabufLock,
    name: "dmabuf_lock",
    authors: ["dmabuf-lock developers"],
    description: "Safe dma-buf locking for Rust drivers: library core",
    license: "GPL",
}

/// The orders primed at load, outermost lock first (R1, R2, R3); the first is the kernel's
/// `dma_resv_lockdep()` chain, with the library's mmu-notifier map in the place of the kernel's.
const CORE_ORDERS: [LockOrder<'static>; 2] = [
    LockOrder::new(c"core")
        .then(Level::MmapLock)
        .then(Level::Resv)
        .then(Level::Reclaim)
        .then(Level::MmuNotifier)
        .then(Level::FenceWait),
    LockOrder::new(c"core")
        .then(Level::Resv)
        .then(Level::FenceWait),
];

/// The contents of `primed_orders`.
struct PrimedOrders;

impl fmt::Debug for PrimedOrders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !cfg!(CONFIG_LOCKDEP) {
            return writeln!(f, "lockdep is not enabled in this kernel: nothing primed");
        }
        for order in CORE_ORDERS.iter() {
            writeln!(f, "core: {order:?}")?;
        }
        Ok(())
    }
}

/// Shows `primed_orders`; called by `seq_read` through `single_open`.
///
/// # Safety
///
/// `seq` is a live `seq_file`.
unsafe extern "C" fn primed_orders_show(
    seq: *mut bindings::seq_file,
    _: *mut kernel::ffi::c_void,
) -> kernel::ffi::c_int {
    // SAFETY: The caller passes a live `seq_file`.
    let seq = unsafe { SeqFile::from_raw(seq) };
    seq_print!(seq, "{:?}", PrimedOrders);
    0
}

/// Opens `primed_orders` as a `single_open` sequence file.
///
/// # Safety
///
/// Called by the VFS with a file being opened.
unsafe extern "C" fn primed_orders_open(
    _inode: *mut bindings::inode,
    file: *mut bindings::file,
) -> kernel::ffi::c_int {
    // SAFETY: `file` is being opened; `primed_orders_show` uses no private data.
    unsafe { bindings::single_open(file, Some(primed_orders_show), ptr::null_mut()) }
}

/// `file_operations` of `primed_orders`, owned by this module.
struct FileOps(bindings::file_operations);

// SAFETY: The table is never written after initialisation; the VFS only reads it.
unsafe impl Sync for FileOps {}

static PRIMED_ORDERS_FOPS: FileOps = FileOps(bindings::file_operations {
    // The open file holds a reference on this module (`fops_get`), so it cannot be unloaded
    // under it.
    owner: kernel::module::this_module::<DmabufLock>().as_ptr(),
    open: Some(primed_orders_open),
    read: Some(bindings::seq_read),
    llseek: Some(bindings::seq_lseek),
    release: Some(bindings::single_release),
    ..pin_init::zeroed()
});

/// The module's debugfs directory, removed with everything in it on drop.
///
/// # Invariants
///
/// `0` is a debugfs dentry made by `debugfs_create_dir`, removed only in `drop`.
struct DebugfsDir(NonNull<bindings::dentry>);

// SAFETY: A debugfs dentry may be removed from any task.
unsafe impl Send for DebugfsDir {}
// SAFETY: `DebugfsDir` offers no access through `&self`.
unsafe impl Sync for DebugfsDir {}

impl DebugfsDir {
    /// `/sys/kernel/debug/dmabuf_lock/` with the file `primed_orders`.
    fn new() -> Result<Self> {
        // SAFETY: The name is a C string; a NULL parent is the debugfs root.
        let dir = from_err_ptr(unsafe {
            bindings::debugfs_create_dir(c"dmabuf_lock".as_char_ptr(), ptr::null_mut())
        })?;
        // INVARIANT: `debugfs_create_dir` returned a dentry, not an error.
        let dir = Self(NonNull::new(dir).ok_or(ENOMEM)?);
        // SAFETY: `dir.0` is a live debugfs directory; the file operations are static, and
        // the file lives until the directory is removed.
        from_err_ptr(unsafe {
            bindings::debugfs_create_file_full(
                c"primed_orders".as_char_ptr(),
                0o444,
                dir.0.as_ptr(),
                ptr::null_mut(),
                ptr::null(),
                &PRIMED_ORDERS_FOPS.0,
            )
        })?;
        Ok(dir)
    }
}

impl Drop for DebugfsDir {
    fn drop(&mut self) {
        // SAFETY: The dentry is a debugfs directory made in `new`, removed once (type invariant).
        // Removal waits for calls in progress on its files; no file is open, since each open
        // file holds a module reference.
        unsafe { bindings::debugfs_remove(self.0.as_ptr()) };
    }
}

extern "C" {
    /// Registers the module notifier that frees the shrinkers a module leaked (`rust/reclaim.c`).
    fn dl_reclaim_init() -> kernel::ffi::c_int;
    /// Unregisters it.
    fn dl_reclaim_exit();
}

/// The module notifier of `rust/reclaim.c`, registered while the module is loaded.
///
/// # Invariants
///
/// `dl_reclaim_init` succeeded for this value, and `drop` undoes it once.
struct LeakedShrinkerReaper;

impl LeakedShrinkerReaper {
    fn new() -> Result<Self> {
        // SAFETY: Called once per load of this module, paired with `dl_reclaim_exit` in `drop`.
        kernel::error::to_result(unsafe { dl_reclaim_init() })?;
        // INVARIANT: Registered just above.
        Ok(Self)
    }
}

impl Drop for LeakedShrinkerReaper {
    fn drop(&mut self) {
        // SAFETY: Registered by `new` (type invariant). No other module that registered a
        // shrinker through the library is loaded any more: each links against this one. A
        // shrinker this module leaked itself is freed by `dl_reclaim_exit` (with a warning),
        // since this module's own `GOING` notification comes after its exit, too late.
        unsafe { dl_reclaim_exit() };
    }
}

struct DmabufLock {
    _dir: DebugfsDir,
    _reaper: LeakedShrinkerReaper,
}

impl kernel::Module for DmabufLock {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let task = MayBlock::new()?;
        for order in CORE_ORDERS.iter() {
            order.prime(&task)?;
        }
        let reaper = LeakedShrinkerReaper::new()?;
        let dir = DebugfsDir::new()?;
        pr_info!("library core loaded\n");
        Ok(Self {
            _dir: dir,
            _reaper: reaper,
        })
    }
}
