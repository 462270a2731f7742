// SPDX-License-Identifier: GPL-2.0

//! The correct twin of `r4_alloc_in_section_bad.rs` (R4): the `GFP_KERNEL` allocation happens
//! before the fence-signalling critical section, and the section only allocates with
//! `GFP_ATOMIC`. Loading it must leave lockdep silent.

use kernel::{bindings, prelude::*};

module! {
    type: R4AllocInSectionGood,
    name: "r4_alloc_in_section_good",
    authors: ["dmabuf-lock developers"],
    description: "Lockdep positive test: allocation outside a fence-signalling section (R4)",
    license: "GPL",
}

struct R4AllocInSectionGood;

impl kernel::Module for R4AllocInSectionGood {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let buf = KVec::<u8>::with_capacity(4096, GFP_KERNEL)?;
        // SAFETY: Begin and end are paired on this task, as R5 and R7 require.
        let cookie = unsafe { bindings::dma_fence_begin_signalling() };
        let small = KVec::<u8>::with_capacity(64, GFP_ATOMIC);
        // SAFETY: `cookie` comes from the begin above, on this task.
        unsafe { bindings::dma_fence_end_signalling(cookie) };
        pr_info!(
            "allocated {} bytes before and {} bytes atomically inside a signalling section\n",
            buf.capacity(),
            small?.capacity()
        );
        Ok(Self)
    }
}
