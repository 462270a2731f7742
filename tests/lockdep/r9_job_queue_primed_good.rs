// SPDX-License-Identifier: GPL-2.0

//! The correct twin of `r9_job_queue_primed_bad.rs` (R9): the same priming, and the path
//! allocates under the job-queue lock only with `GFP_ATOMIC`, which cannot enter reclaim.
//! Loading it must leave lockdep silent.

#[path = "../../rust/dmabuf_lock/mod.rs"]
pub mod dmabuf_lock;

pub mod common;

use common::{init_task, prime_job_queue};
use kernel::{new_mutex, prelude::*};

module! {
    type: R9JobQueuePrimedGood,
    name: "r9_job_queue_primed_good",
    authors: ["dmabuf-lock developers"],
    description: "Lockdep positive test: primed signalling-path lock, allocation outside it (R9)",
    license: "GPL",
}

struct R9JobQueuePrimedGood;

impl kernel::Module for R9JobQueuePrimedGood {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let job_queue = KBox::pin_init(new_mutex!(KVec::<u64>::new(), "job_queue"), GFP_KERNEL)?;
        prime_job_queue(&init_task()?, &job_queue)?;
        let mut queue = job_queue.lock();
        queue.push(1, GFP_ATOMIC)?;
        Ok(Self)
    }
}
