// SPDX-License-Identifier: GPL-2.0

//! expect-splat: possible circular locking dependency detected[\s\S]*job_queue[\s\S]*fs_reclaim
//!
//! Deliberately wrong (R9): the driver declares its job-queue lock as taken inside signalling
//! sections and primes that order at init; then a path holds the queue lock while allocating
//! with `GFP_KERNEL`. Because of the priming, lockdep reports it at this first wrong
//! acquisition, although no signalling path has run yet. `r9_job_queue_unprimed_silent.rs` is
//! the same module without the priming: lockdep stays silent there.
//!
//! Its correct twin is `r9_job_queue_primed_good.rs`.

#[path = "../../rust/dmabuf_lock/mod.rs"]
pub mod dmabuf_lock;

pub mod common;

use common::{init_task, prime_job_queue};
use kernel::{new_mutex, prelude::*};

module! {
    type: R9JobQueuePrimedBad,
    name: "r9_job_queue_primed_bad",
    authors: ["dmabuf-lock developers"],
    description: "Lockdep negative test: primed signalling-path lock held while allocating (R9)",
    license: "GPL",
}

struct R9JobQueuePrimedBad;

impl kernel::Module for R9JobQueuePrimedBad {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let job_queue = KBox::pin_init(new_mutex!(KVec::<u64>::new(), "job_queue"), GFP_KERNEL)?;
        prime_job_queue(&init_task()?, &job_queue)?;
        let mut queue = job_queue.lock();
        queue.push(1, GFP_KERNEL)?;
        Ok(Self)
    }
}
