// SPDX-License-Identifier: GPL-2.0

//! The correct twin of `r2_shrinker_scan_blocks_on_resv_bad.rs` (R2): the scan, run by
//! `drop_caches`, trylocks the reservation through its `ReclaimScope`. Loading it must leave
//! lockdep silent.

#[path = "../../rust/dmabuf_lock/mod.rs"]
pub mod dmabuf_lock;

pub mod common;

use common::{drop_caches, init_task};
use dmabuf_lock::{
    lockdep::ReclaimScope,
    resv::OwnedResv,
    shrinker::{ScanResult, Shrink, ShrinkControl, Shrinker},
};
use kernel::{
    prelude::*,
    sync::atomic::{Atomic, Relaxed},
};

module! {
    type: R2ShrinkerScanBlocksOnResvGood,
    name: "r2_shrinker_scan_blocks_on_resv_good",
    authors: ["dmabuf-lock developers"],
    description: "Lockdep positive test: a shrinker scan that trylocks a reservation (R2)",
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

    fn scan(&self, reclaim: &ReclaimScope<'_>, _control: &mut ShrinkControl) -> ScanResult {
        self.scans.add(1, Relaxed);
        drop(reclaim.try_lock(&self.resv));
        ScanResult::Freed(0)
    }
}

struct R2ShrinkerScanBlocksOnResvGood;

impl kernel::Module for R2ShrinkerScanBlocksOnResvGood {
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
