// SPDX-License-Identifier: GPL-2.0

//! `shrinker_leaked_init_fails.ko`: leaks a shrinker during its init, then fails the init. The
//! loader frees the module's code right away; `dmabuf_lock.ko` frees the shrinker before, on the
//! module's `GOING` notification (`rust/reclaim.c`). The boot
//! `boot:shrinker-leaked-then-init-fails` loads it and then runs every shrinker (`drop_caches`).

#[path = "../../rust/dmabuf_lock/mod.rs"]
pub mod dmabuf_lock;

pub mod always_full;

use always_full::leak_shrinker;
use kernel::prelude::*;

module! {
    type: ShrinkerLeakedInitFails,
    name: "shrinker_leaked_init_fails",
    authors: ["dmabuf-lock developers"],
    description: "Soundness test: a shrinker leaked by a failing init",
    license: "GPL",
}

struct ShrinkerLeakedInitFails;

impl kernel::Module for ShrinkerLeakedInitFails {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        leak_shrinker(c"shrinker_leaked_init_fails")?;
        Err(EINVAL)
    }
}
