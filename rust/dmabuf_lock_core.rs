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
//! The library itself is source shared by all modules: see `rust/dmabuf_lock/mod.rs`.

use kernel::{debugfs, fmt, prelude::*};

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

/// The orders primed at load, outermost lock first (R1, R2, R3).
const CORE_ORDERS: [LockOrder<'static>; 2] = [
    LockOrder::new(c"core")
        .then(Level::MmapLock)
        .then(Level::Resv)
        .then(Level::Reclaim)
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

struct DmabufLock {
    _primed_orders: Pin<KBox<debugfs::File<PrimedOrders>>>,
    _dir: debugfs::Dir,
}

impl kernel::Module for DmabufLock {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let task = MayBlock::new()?;
        for order in CORE_ORDERS.iter() {
            order.prime(&task)?;
        }
        let dir = debugfs::Dir::new(c"dmabuf_lock");
        let file = KBox::pin_init(
            dir.read_only_file(c"primed_orders", PrimedOrders),
            GFP_KERNEL,
        )?;
        pr_info!("library core loaded\n");
        Ok(Self {
            _primed_orders: file,
            _dir: dir,
        })
    }
}
