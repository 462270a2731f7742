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

use common::{init_task, scan_resv_in_reclaim};
use dmabuf_lock::context::MayBlock;
use kernel::prelude::*;

module! {
    type: R2ShrinkerScanBlocksOnResvBad,
    name: "r2_shrinker_scan_blocks_on_resv_bad",
    authors: ["dmabuf-lock developers"],
    description: "Lockdep negative test: a shrinker scan that blocks on a reservation (R2)",
    license: "GPL",
}

struct R2ShrinkerScanBlocksOnResvBad;

impl kernel::Module for R2ShrinkerScanBlocksOnResvBad {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let task = init_task()?;
        // The scan blocks on the reservation with a proof of its own.
        scan_resv_in_reclaim(&task, |_reclaim, resv| {
            if let Ok(task) = MayBlock::new() {
                drop(resv.lock(&task));
            }
        })?;
        Ok(Self)
    }
}
