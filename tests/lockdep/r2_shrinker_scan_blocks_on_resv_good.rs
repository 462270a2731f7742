// SPDX-License-Identifier: GPL-2.0

//! The correct twin of `r2_shrinker_scan_blocks_on_resv_bad.rs` (R2): the scan, run by
//! `drop_caches`, trylocks the reservation through its `ReclaimScope`. Loading it must leave
//! lockdep silent.

#[path = "../../rust/dmabuf_lock/mod.rs"]
pub mod dmabuf_lock;

pub mod common;

use common::{init_task, scan_resv_in_reclaim};
use kernel::prelude::*;

module! {
    type: R2ShrinkerScanBlocksOnResvGood,
    name: "r2_shrinker_scan_blocks_on_resv_good",
    authors: ["dmabuf-lock developers"],
    description: "Lockdep positive test: a shrinker scan that trylocks a reservation (R2)",
    license: "GPL",
}

struct R2ShrinkerScanBlocksOnResvGood;

impl kernel::Module for R2ShrinkerScanBlocksOnResvGood {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let task = init_task()?;
        // The scan trylocks the reservation through its reclaim scope.
        scan_resv_in_reclaim(&task, |reclaim, resv| drop(reclaim.try_lock(resv)))?;
        Ok(Self)
    }
}
