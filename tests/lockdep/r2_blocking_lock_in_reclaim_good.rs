// SPDX-License-Identifier: GPL-2.0

//! The correct twin of `r2_blocking_lock_in_reclaim_bad.rs` (R2): the reclaim path trylocks the
//! reservation through a `ReclaimScope`. Loading it must leave lockdep silent.

pub mod common;
#[path = "../../rust/dmabuf_lock/mod.rs"]
pub mod dmabuf_lock;

use common::init_task;
use dmabuf_lock::resv::OwnedResv;
use kernel::prelude::*;

module! {
    type: R2BlockingLockInReclaimGood,
    name: "r2_blocking_lock_in_reclaim_good",
    authors: ["dmabuf-lock developers"],
    description: "Lockdep positive test: reclaim trylocks reservations (R2)",
    license: "GPL",
}

struct R2BlockingLockInReclaimGood;

impl kernel::Module for R2BlockingLockInReclaimGood {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let mut task = init_task()?;
        let resv = KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?;
        let reclaim = task.reclaim_scope();
        let evicted = reclaim.try_lock(&resv).is_some();
        drop(reclaim);
        pr_info!("reclaim trylocked the reservation: {evicted}\n");
        Ok(Self)
    }
}
