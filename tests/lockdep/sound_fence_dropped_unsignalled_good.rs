// SPDX-License-Identifier: GPL-2.0

//! Correct twin of `sound_fence_dropped_unsignalled_bad.rs` (R8): the driver cancels the fence
//! of work it will not do, explicitly, which signals `-ECANCELED` without a warning.

pub mod common;
#[path = "../../rust/dmabuf_lock/mod.rs"]
pub mod dmabuf_lock;

use common::init_task;
use dmabuf_lock::fence::{Fence, FenceTimeline};
use kernel::{prelude::*, sync::aref::ARef};

module! {
    type: SoundFenceDroppedUnsignalledGood,
    name: "sound_fence_dropped_unsignalled_good",
    authors: ["dmabuf-lock developers"],
    description: "Soundness test: a driver fence cancelled explicitly (R8)",
    license: "GPL",
}

struct SoundFenceDroppedUnsignalledGood;

impl kernel::Module for SoundFenceDroppedUnsignalledGood {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let task = init_task()?;
        let fence = FenceTimeline::new().prepare(&task)?.arm();
        let published: ARef<Fence> = fence.fence().into();
        fence.cancel();
        if published.status() != Err(ECANCELED) {
            return Err(EINVAL);
        }
        Ok(Self)
    }
}
