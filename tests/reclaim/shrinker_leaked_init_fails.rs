// SPDX-License-Identifier: GPL-2.0

//! `shrinker_leaked_init_fails.ko`: leaks a shrinker during its init, then fails the init. The
//! loader frees the module's code right away; `dmabuf_lock.ko` frees the shrinker before, on the
//! module's `GOING` notification (`rust/reclaim.c`). The boot
//! `boot:shrinker-leaked-then-init-fails` loads it and then runs every shrinker (`drop_caches`).

use kernel::prelude::*;

#[path = "../../rust/dmabuf_lock/mod.rs"]
pub mod dmabuf_lock;

use dmabuf_lock::{
    context::MayBlock,
    lockdep::ReclaimScope,
    shrinker::{ScanResult, Shrink, ShrinkControl, Shrinker},
};

module! {
    type: ShrinkerLeakedInitFails,
    name: "shrinker_leaked_init_fails",
    authors: ["dmabuf-lock developers"],
    description: "Soundness test: a shrinker leaked by a failing init",
    license: "GPL",
}

/// Always has something to free, so that every reclaim calls its scan.
struct AlwaysFull;

impl Shrink for AlwaysFull {
    fn count(&self) -> usize {
        1024
    }

    fn scan(&self, _reclaim: &ReclaimScope<'_>, _control: &mut ShrinkControl) -> ScanResult {
        pr_info!("shrinker_leaked_init_fails: scan\n");
        ScanResult::Stop
    }
}

struct ShrinkerLeakedInitFails;

impl kernel::Module for ShrinkerLeakedInitFails {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let task = MayBlock::new()?;
        core::mem::forget(Shrinker::register(
            &task,
            c"shrinker_leaked_init_fails",
            AlwaysFull,
        )?);
        Err(EINVAL)
    }
}
