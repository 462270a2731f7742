// SPDX-License-Identifier: GPL-2.0

//! `shrinker_leaked.ko`: registers a shrinker at init and leaks it (`mem::forget`), as safe code
//! may. Its callbacks are this module's code, so once the module is unloaded a scan would run
//! freed code; `dmabuf_lock.ko` frees the shrinker as the module goes (`rust/reclaim.c`). The
//! boot `boot:shrinker-leaked-then-unloaded` unloads it and runs every shrinker
//! (`drop_caches`).

#[path = "../../rust/dmabuf_lock/mod.rs"]
pub mod dmabuf_lock;

pub mod always_full;

use always_full::leak_shrinker;
use kernel::prelude::*;

module! {
    type: ShrinkerLeaked,
    name: "shrinker_leaked",
    authors: ["dmabuf-lock developers"],
    description: "Soundness test: a leaked shrinker of an unloaded module",
    license: "GPL",
}

struct ShrinkerLeaked;

impl kernel::Module for ShrinkerLeaked {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        leak_shrinker(c"shrinker_leaked")?;
        Ok(Self)
    }
}
