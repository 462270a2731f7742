// SPDX-License-Identifier: GPL-2.0

//! expect-splat: lockdep map freed while a leaked guard holds it; lockdep switched off
//!
//! Deliberately wrong (soundness, R9): a guard of a lockdep map pinned on the stack is leaked,
//! and the map goes out of scope while lockdep still records it as held. `LockdepMap` counts
//! its holders; its drop warns and switches lockdep off rather than leave lockdep a pointer
//! into a dead stack frame.
//!
//! Its correct twin is `sound_leaked_map_guard_good.rs`.

pub mod common;
#[path = "../../rust/dmabuf_lock/mod.rs"]
pub mod dmabuf_lock;

use dmabuf_lock::lockdep::LockdepMap;
use kernel::{prelude::*, static_lock_class};
use pin_init::stack_pin_init;

module! {
    type: SoundLeakedMapGuardBad,
    name: "sound_leaked_map_guard_bad",
    authors: ["dmabuf-lock developers"],
    description: "Soundness test: a lockdep map freed while a leaked guard holds it",
    license: "GPL",
}

struct SoundLeakedMapGuardBad;

impl kernel::Module for SoundLeakedMapGuardBad {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        {
            stack_pin_init!(let ring = LockdepMap::new(c"ring", static_lock_class!()));
            core::mem::forget(ring.acquire());
            pr_info!("leaked a guard of a lockdep map on the stack\n");
        }
        Ok(Self)
    }
}
