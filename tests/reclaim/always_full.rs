// SPDX-License-Identifier: GPL-2.0

//! What the modules that leak a shrinker share: a shrinker that always has something to free,
//! so that every reclaim (and every `drop_caches`) calls its scan, which says so in the log
//! (`<module>: scan`).

use crate::dmabuf_lock::{
    context::MayBlock,
    lockdep::ReclaimScope,
    shrinker::{ScanResult, Shrink, ShrinkControl, Shrinker},
};
use kernel::prelude::*;

/// Always has something to free; its scan logs that it ran and frees nothing.
struct AlwaysFull;

impl Shrink for AlwaysFull {
    fn count(&self) -> usize {
        1024
    }

    fn scan(&self, _reclaim: &ReclaimScope<'_>, _control: &mut ShrinkControl) -> ScanResult {
        pr_info!("scan\n");
        ScanResult::Stop
    }
}

/// Registers an always-full shrinker named `name` and leaks it (`mem::forget`), as safe code may.
pub fn leak_shrinker(name: &'static CStr) -> Result {
    let task = MayBlock::new()?;
    core::mem::forget(Shrinker::register(&task, name, AlwaysFull)?);
    Ok(())
}
