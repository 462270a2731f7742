// SPDX-License-Identifier: GPL-2.0

//! Correct twin of `sound_leaked_resv_guard_bad.rs` (soundness, R7): the guard of a reservation
//! pinned on the stack is dropped before the reservation, so nothing is reported and lockdep
//! stays on.

pub mod common;
#[path = "../../rust/dmabuf_lock/mod.rs"]
pub mod dmabuf_lock;

use common::init_task;
use dmabuf_lock::resv::OwnedResv;
use kernel::prelude::*;
use pin_init::stack_pin_init;

module! {
    type: SoundLeakedResvGuardGood,
    name: "sound_leaked_resv_guard_good",
    authors: ["dmabuf-lock developers"],
    description: "Soundness test: a reservation on the stack unlocked before it goes",
    license: "GPL",
}

struct SoundLeakedResvGuardGood;

impl kernel::Module for SoundLeakedResvGuardGood {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let task = init_task()?;
        {
            stack_pin_init!(let resv = OwnedResv::new());
            let guard = resv.lock(&task);
            pr_info!("locked a reservation on the stack\n");
            drop(guard);
        }
        Ok(Self)
    }
}
