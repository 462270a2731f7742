// SPDX-License-Identifier: GPL-2.0

//! The correct twin of `r7_unlock_from_other_task_bad.rs` (R7): the work item that needs the
//! reservation locks and unlocks it itself, with a guard. Loading it must leave lockdep silent.

#[path = "../../rust/dmabuf_lock/mod.rs"]
pub mod dmabuf_lock;

pub mod common;
#[path = "../support/work.rs"]
mod work;

use common::SharedResv;
use dmabuf_lock::context::MayBlock;
use kernel::prelude::*;

module! {
    type: R7UnlockFromOtherTaskGood,
    name: "r7_unlock_from_other_task_good",
    authors: ["dmabuf-lock developers"],
    description: "Lockdep positive test: reservation locked and unlocked by one task (R7)",
    license: "GPL",
}

struct R7UnlockFromOtherTaskGood;

impl kernel::Module for R7UnlockFromOtherTaskGood {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let shared = SharedResv::new()?;
        let other = shared.clone();
        work::spawn(work::system_dfl(), move || {
            if let Ok(task) = MayBlock::new() {
                drop(other.resv.lock(&task));
            }
            other.done.complete_all();
        })?;
        shared.done.wait_for_completion();
        Ok(Self)
    }
}
