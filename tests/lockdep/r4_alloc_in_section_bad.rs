// SPDX-License-Identifier: GPL-2.0

//! expect-splat: possible circular locking dependency detected[\s\S]*fs_reclaim[\s\S]*dma_fence_map
//!
//! Deliberately wrong (R4): allocates with `GFP_KERNEL` inside a fence-signalling critical
//! section, through the raw bindings that bypass this project's types. Loading it must make
//! lockdep report a circular dependency between `dma_fence_map` and `fs_reclaim`.
//!
//! Its correct twin is `r4_alloc_in_section_good.rs`.

use kernel::{bindings, prelude::*};

module! {
    type: R4AllocInSectionBad,
    name: "r4_alloc_in_section_bad",
    authors: ["dmabuf-lock developers"],
    description: "Lockdep negative test: GFP_KERNEL inside a fence-signalling section (R4)",
    license: "GPL",
}

struct R4AllocInSectionBad;

impl kernel::Module for R4AllocInSectionBad {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        // SAFETY: Begin and end are paired on this task, as R5 and R7 require.
        let cookie = unsafe { bindings::dma_fence_begin_signalling() };
        let buf = KVec::<u8>::with_capacity(4096, GFP_KERNEL);
        // SAFETY: `cookie` comes from the begin above, on this task.
        unsafe { bindings::dma_fence_end_signalling(cookie) };
        pr_info!(
            "allocated {} bytes inside a signalling section\n",
            buf?.capacity()
        );
        Ok(Self)
    }
}
