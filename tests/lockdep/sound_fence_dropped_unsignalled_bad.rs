// SPDX-License-Identifier: GPL-2.0

//! expect-splat: driver fence dropped unsignalled \(R8\)
//!
//! Deliberately wrong (R8): a published driver fence is dropped without being signalled. The
//! library signals it with `-ECANCELED` so no waiter hangs, and warns, since the driver lost
//! track of work it promised. The module fails to load if the fence was not signalled so.
//!
//! Its correct twin is `sound_fence_dropped_unsignalled_good.rs`.

pub mod common;
#[path = "../../rust/dmabuf_lock/mod.rs"]
pub mod dmabuf_lock;

use common::init_task;
use dmabuf_lock::fence::{Fence, FenceTimeline};
use kernel::{prelude::*, sync::aref::ARef};

module! {
    type: SoundFenceDroppedUnsignalledBad,
    name: "sound_fence_dropped_unsignalled_bad",
    authors: ["dmabuf-lock developers"],
    description: "Soundness test: a driver fence dropped unsignalled (R8)",
    license: "GPL",
}

struct SoundFenceDroppedUnsignalledBad;

impl kernel::Module for SoundFenceDroppedUnsignalledBad {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let task = init_task()?;
        let fence = FenceTimeline::new().prepare(&task)?.arm();
        let published: ARef<Fence> = fence.fence().into();
        drop(fence);
        if published.status() != Err(ECANCELED) {
            return Err(EINVAL);
        }
        Ok(Self)
    }
}
