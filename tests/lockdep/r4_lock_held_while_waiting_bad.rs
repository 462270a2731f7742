// SPDX-License-Identifier: GPL-2.0

//! expect-splat: possible circular locking dependency detected[\s\S]*job_queue[\s\S]*dma_fence_map
//!
//! Deliberately wrong (R4), written with the safe API only: a driver's job-queue lock is taken
//! inside a signalling section (fine on its own), and another path holds that lock while it may
//! wait for a fence. The fence's signaller may need the lock, so the waiter can wait forever.
//! The types cannot see this across two paths; lockdep does, since the section and the wait are
//! both annotated.
//!
//! Its correct twin is `r4_lock_held_while_waiting_good.rs`.

pub mod common;
#[path = "../../rust/dmabuf_lock/mod.rs"]
pub mod dmabuf_lock;

use common::init_task;
use dmabuf_lock::signalling::might_wait_for_fence;
use kernel::{new_mutex, prelude::*};

module! {
    type: R4LockHeldWhileWaitingBad,
    name: "r4_lock_held_while_waiting_bad",
    authors: ["dmabuf-lock developers"],
    description: "Lockdep negative test: a signalling-path lock held while waiting for a fence (R4)",
    license: "GPL",
}

struct R4LockHeldWhileWaitingBad;

impl kernel::Module for R4LockHeldWhileWaitingBad {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let mut task = init_task()?;
        let job_queue = KBox::pin_init(new_mutex!(0u32, "job_queue"), GFP_KERNEL)?;
        // The signalling path: a job completes and is taken off the queue.
        {
            let _section = task.signalling_section();
            *job_queue.lock() += 1;
        }
        // The submission path: waits for a fence with the queue locked.
        let queued = job_queue.lock();
        might_wait_for_fence(&task);
        pr_info!("waited with {} jobs queued and the queue locked\n", *queued);
        Ok(Self)
    }
}
