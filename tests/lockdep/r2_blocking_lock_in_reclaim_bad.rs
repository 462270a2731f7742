// SPDX-License-Identifier: GPL-2.0

//! expect-splat: possible circular locking dependency detected[\s\S]*reservation_ww_class_mutex[\s\S]*fs_reclaim
//!
//! Deliberately wrong (R2): a shrinker-like path, marked as running in reclaim, blocks on a
//! reservation instead of trylocking it. A `ReclaimScope` offers only `try_lock`
//! (`compile-fail/resv_lock_in_reclaim_scope.rs`), so this case marks reclaim with the raw
//! binding. Reservations nest outside reclaim (allocating under one is allowed), so lockdep
//! reports the cycle.
//!
//! Its correct twin is `r2_blocking_lock_in_reclaim_good.rs`.

pub mod common;
#[path = "../../rust/dmabuf_lock/mod.rs"]
pub mod dmabuf_lock;

use common::init_task;
use dmabuf_lock::resv::OwnedResv;
use kernel::{bindings, prelude::*};

module! {
    type: R2BlockingLockInReclaimBad,
    name: "r2_blocking_lock_in_reclaim_bad",
    authors: ["dmabuf-lock developers"],
    description: "Lockdep negative test: blocking reservation lock in reclaim (R2)",
    license: "GPL",
}

struct R2BlockingLockInReclaimBad;

impl kernel::Module for R2BlockingLockInReclaimBad {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let task = init_task()?;
        let resv = KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?;
        // SAFETY: Only tells lockdep that reclaim runs; released below on this task.
        unsafe { bindings::fs_reclaim_acquire(bindings::GFP_KERNEL) };
        drop(resv.lock(&task));
        // SAFETY: Pairs with the acquire above.
        unsafe { bindings::fs_reclaim_release(bindings::GFP_KERNEL) };
        Ok(Self)
    }
}
