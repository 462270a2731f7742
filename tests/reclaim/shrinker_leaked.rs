// SPDX-License-Identifier: GPL-2.0

//! `shrinker_leaked.ko`: registers a shrinker at init and leaks it (`mem::forget`), as safe code
//! may. Its callbacks are this module's code, so once the module is unloaded a scan would run
//! freed code; `dmabuf_lock.ko` frees the shrinker as the module goes (`rust/reclaim.c`). The
//! boot `boot:shrinker-leaked-then-unloaded` unloads it and runs every shrinker
//! (`drop_caches`).

use kernel::prelude::*;

#[path = "../../rust/dmabuf_lock/mod.rs"]
pub mod dmabuf_lock;

use dmabuf_lock::{
    context::MayBlock,
    lockdep::ReclaimScope,
    shrinker::{ScanResult, Shrink, ShrinkControl, Shrinker},
};

module! {
    type: ShrinkerLeaked,
    name: "shrinker_leaked",
    authors: ["dmabuf-lock developers"],
    description: "Soundness test: a leaked shrinker of an unloaded module",
    license: "GPL",
}

/// Always has something to free, so that every reclaim calls its scan.
struct AlwaysFull;

impl Shrink for AlwaysFull {
    fn count(&self) -> usize {
        1024
    }

    fn scan(&self, _reclaim: &ReclaimScope<'_>, _control: &mut ShrinkControl) -> ScanResult {
        pr_info!("shrinker_leaked: scan\n");
        ScanResult::Stop
    }
}

struct ShrinkerLeaked;

impl kernel::Module for ShrinkerLeaked {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let task = MayBlock::new()?;
        core::mem::forget(Shrinker::register(&task, c"shrinker_leaked", AlwaysFull)?);
        Ok(Self)
    }
}
