// SPDX-License-Identifier: GPL-2.0

//! The correct twin of `r4_resv_in_section_bad.rs` (R4): the reservation is locked and the fence
//! added before the signalling section; the section only signals. Loading it must leave lockdep
//! silent.

pub mod common;
#[path = "../../rust/dmabuf_lock/mod.rs"]
pub mod dmabuf_lock;

use common::init_task;
use dmabuf_lock::{
    fence::FenceTimeline,
    resv::{FenceUsage, OwnedResv},
};
use kernel::prelude::*;

module! {
    type: R4ResvInSectionGood,
    name: "r4_resv_in_section_good",
    authors: ["dmabuf-lock developers"],
    description: "Lockdep positive test: reservation locked before the signalling section (R4)",
    license: "GPL",
}

struct R4ResvInSectionGood;

impl kernel::Module for R4ResvInSectionGood {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let mut task = init_task()?;
        let resv = KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?;
        let timeline = FenceTimeline::new();
        let fence = timeline.prepare(&task)?.arm();
        {
            let mut guard = resv.lock(&task);
            guard.reserve_fences(1)?;
            guard.add_fence(fence.fence(), FenceUsage::Write)?;
        }
        let section = task.signalling_section();
        fence.signal(Ok(()));
        drop(section);
        Ok(Self)
    }
}
