// SPDX-License-Identifier: GPL-2.0

//! expect-splat: possible circular locking dependency detected[\s\S]*reservation_ww_class_mutex[\s\S]*fs_reclaim
//!
//! Deliberately wrong (R2): a shrinker's scan makes a proof of its own (`MayBlock::new()`, which
//! nothing refuses there) and blocks on a reservation, instead of trylocking it through the
//! `ReclaimScope` it was given (`compile-fail/shrinker_scan_lock.rs` is the shape that does not
//! compile). The scan is run by `drop_caches`, where the kernel itself holds no `fs_reclaim`:
//! the library's scope around every scan does, so lockdep reports the blocking lock on this path
//! too, against the core's `dma_resv -> fs_reclaim` order.
//!
//! Its correct twin is `r2_shrinker_scan_blocks_on_resv_good.rs`.

#[path = "../../rust/dmabuf_lock/mod.rs"]
pub mod dmabuf_lock;

pub mod common;

use common::{drop_caches, init_task};
use dmabuf_lock::{
    context::MayBlock,
    lockdep::ReclaimScope,
    resv::OwnedResv,
    shrinker::{ScanResult, Shrink, ShrinkControl, Shrinker},
};
use kernel::{
    prelude::*,
    sync::atomic::{Atomic, Relaxed},
};

module! {
    type: R2ShrinkerScanBlocksOnResvBad,
    name: "r2_shrinker_scan_blocks_on_resv_bad",
    authors: ["dmabuf-lock developers"],
    description: "Lockdep negative test: a shrinker scan that blocks on a reservation (R2)",
    license: "GPL",
}

/// One buffer's reservation, and how often reclaim scanned it.
#[pin_data]
struct Buffer {
    #[pin]
    resv: OwnedResv,
    scans: Atomic<u32>,
}

impl Shrink for Buffer {
    fn count(&self) -> usize {
        1
    }

    fn scan(&self, _reclaim: &ReclaimScope<'_>, _control: &mut ShrinkControl) -> ScanResult {
        self.scans.add(1, Relaxed);
        if let Ok(task) = MayBlock::new() {
            drop(self.resv.lock(&task));
        }
        ScanResult::Freed(0)
    }
}

struct R2ShrinkerScanBlocksOnResvBad;

impl kernel::Module for R2ShrinkerScanBlocksOnResvBad {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let task = init_task()?;
        let buffer = pin_init!(Buffer {
            resv <- OwnedResv::new(),
            scans: Atomic::new(0),
        });
        let shrinker = Shrinker::register(&task, c"r2_shrinker_scan", buffer)?;
        drop_caches()?;
        if shrinker.scans.load(Relaxed) == 0 {
            pr_err!("drop_caches did not scan\n");
            return Err(EINVAL);
        }
        Ok(Self)
    }
}
