// SPDX-License-Identifier: GPL-2.0

//! Correct twin of `sound_leaked_map_guard_bad.rs` (soundness, R9): the map's guard is dropped
//! before the map, so nothing is reported and lockdep stays on.

pub mod common;
#[path = "../../rust/dmabuf_lock/mod.rs"]
pub mod dmabuf_lock;

use dmabuf_lock::lockdep::LockdepMap;
use kernel::{prelude::*, static_lock_class};
use pin_init::stack_pin_init;

module! {
    type: SoundLeakedMapGuardGood,
    name: "sound_leaked_map_guard_good",
    authors: ["dmabuf-lock developers"],
    description: "Soundness test: a lockdep map on the stack released before it goes",
    license: "GPL",
}

struct SoundLeakedMapGuardGood;

impl kernel::Module for SoundLeakedMapGuardGood {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        {
            stack_pin_init!(let ring = LockdepMap::new(c"ring", static_lock_class!()));
            let held = ring.acquire();
            pr_info!("held a lockdep map on the stack\n");
            drop(held);
        }
        Ok(Self)
    }
}
