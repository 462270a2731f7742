// SPDX-License-Identifier: GPL-2.0

//! The correct twin of `r4_lock_held_while_waiting_bad.rs` (R4): the submission path drops the
//! job-queue lock before it may wait for a fence. Loading it must leave lockdep silent.

pub mod common;
#[path = "../../rust/dmabuf_lock/mod.rs"]
pub mod dmabuf_lock;

use common::init_task;
use dmabuf_lock::signalling::might_wait_for_fence;
use kernel::{new_mutex, prelude::*};

module! {
    type: R4LockHeldWhileWaitingGood,
    name: "r4_lock_held_while_waiting_good",
    authors: ["dmabuf-lock developers"],
    description: "Lockdep positive test: fence wait after dropping the signalling-path lock (R4)",
    license: "GPL",
}

struct R4LockHeldWhileWaitingGood;

impl kernel::Module for R4LockHeldWhileWaitingGood {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let mut task = init_task()?;
        let job_queue = KBox::pin_init(new_mutex!(0u32, "job_queue"), GFP_KERNEL)?;
        {
            let _section = task.signalling_section();
            *job_queue.lock() += 1;
        }
        let queued = *job_queue.lock();
        might_wait_for_fence(&task);
        pr_info!("waited after unlocking the queue ({queued} jobs)\n");
        Ok(Self)
    }
}
