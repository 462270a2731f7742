// SPDX-License-Identifier: GPL-2.0

//! expect-splat: bad unlock balance detected[\s\S]*reservation_ww_class_mutex
//!
//! Deliberately wrong (R7): a reservation locked by the loading task is unlocked by a work
//! item. Guards are `!Send` (`compile-fail/guard_sent_to_other_thread.rs`), so this case uses
//! the raw bindings; lockdep reports the unlock by a task that does not hold the lock.
//!
//! Its correct twin is `r7_unlock_from_other_task_good.rs`.

#[path = "../../rust/dmabuf_lock/mod.rs"]
pub mod dmabuf_lock;

pub mod common;
#[path = "../support/work.rs"]
mod work;

use common::SharedResv;
use kernel::{bindings, prelude::*};

module! {
    type: R7UnlockFromOtherTaskBad,
    name: "r7_unlock_from_other_task_bad",
    authors: ["dmabuf-lock developers"],
    description: "Lockdep negative test: reservation unlocked by another task (R7)",
    license: "GPL",
}

struct R7UnlockFromOtherTaskBad;

impl kernel::Module for R7UnlockFromOtherTaskBad {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let shared = SharedResv::new()?;
        // SAFETY: The reservation is initialised; the work item below releases it.
        unsafe { bindings::dma_resv_lock(shared.resv.as_raw(), core::ptr::null_mut()) };
        let other = shared.clone();
        work::spawn(work::system_dfl(), move || {
            // SAFETY: The reservation is locked (by the loading task: that is the bug shown).
            unsafe { bindings::dma_resv_unlock(other.resv.as_raw()) };
            other.done.complete_all();
        })?;
        shared.done.wait_for_completion();
        Ok(Self)
    }
}
