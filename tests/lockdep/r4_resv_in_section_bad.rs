// SPDX-License-Identifier: GPL-2.0

//! expect-splat: possible circular locking dependency detected[\s\S]*reservation_ww_class_mutex[\s\S]*dma_fence_map
//!
//! Deliberately wrong (R4): takes a reservation lock inside a fence-signalling critical
//! section. The safe API makes this a compile error (`compile-fail/resv_lock_inside_section.rs`),
//! so this case uses the raw bindings. The kernel's boot-time priming has taught lockdep that
//! reservations nest outside reclaim, and reclaim outside fence waits, so lockdep reports the
//! cycle at the first lock.
//!
//! Its correct twin is `r4_resv_in_section_good.rs`.

#[path = "../../rust/dmabuf_lock/mod.rs"]
pub mod dmabuf_lock;

use dmabuf_lock::resv::OwnedResv;
use kernel::{bindings, prelude::*};

module! {
    type: R4ResvInSectionBad,
    name: "r4_resv_in_section_bad",
    authors: ["dmabuf-lock developers"],
    description: "Lockdep negative test: reservation lock inside a signalling section (R4)",
    license: "GPL",
}

struct R4ResvInSectionBad;

impl kernel::Module for R4ResvInSectionBad {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let resv = KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?;
        // SAFETY: Begin and end are paired on this task; the reservation is initialised and is
        // unlocked again before the section ends.
        unsafe {
            let cookie = bindings::dma_fence_begin_signalling();
            bindings::dma_resv_lock(resv.as_raw(), core::ptr::null_mut());
            bindings::dma_resv_unlock(resv.as_raw());
            bindings::dma_fence_end_signalling(cookie);
        }
        Ok(Self)
    }
}
