// SPDX-License-Identifier: GPL-2.0

//! expect-splat: dma_resv freed while a leaked guard holds it; lockdep switched off
//!
//! Deliberately wrong (soundness, R7): a guard of a reservation pinned on the stack is leaked
//! with `mem::forget`, and the reservation goes out of scope still locked. Lockdep's table of the
//! task's held locks would keep pointing into the dead stack frame (and read it again when an
//! earlier lock is released), so `OwnedResv`'s drop warns and switches lockdep off instead.
//!
//! Its correct twin is `sound_leaked_resv_guard_good.rs`.

pub mod common;
#[path = "../../rust/dmabuf_lock/mod.rs"]
pub mod dmabuf_lock;

use common::init_task;
use dmabuf_lock::resv::OwnedResv;
use kernel::prelude::*;
use pin_init::stack_pin_init;

module! {
    type: SoundLeakedResvGuardBad,
    name: "sound_leaked_resv_guard_bad",
    authors: ["dmabuf-lock developers"],
    description: "Soundness test: a reservation freed while a leaked guard holds it",
    license: "GPL",
}

struct SoundLeakedResvGuardBad;

impl kernel::Module for SoundLeakedResvGuardBad {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let task = init_task()?;
        {
            stack_pin_init!(let resv = OwnedResv::new());
            core::mem::forget(resv.lock(&task));
            pr_info!("leaked a guard of a reservation on the stack\n");
        }
        // Lockdep is off now; the proof that the task may block must not take lockdep's
        // "everything is held" answers for a signalling section.
        drop(dmabuf_lock::context::MayBlock::new()?);
        Ok(Self)
    }
}
