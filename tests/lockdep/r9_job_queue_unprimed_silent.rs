// SPDX-License-Identifier: GPL-2.0

//! `r9_job_queue_primed_bad.rs` without the priming (R9): the same wrong acquisition, holding
//! the job-queue lock while allocating with `GFP_KERNEL`, but lockdep has never seen the queue
//! lock inside a signalling section, so it reports nothing. This is what priming is for; the
//! test passes when lockdep stays silent.

#[path = "../../rust/dmabuf_lock/mod.rs"]
pub mod dmabuf_lock;

use kernel::{new_mutex, prelude::*};

module! {
    type: R9JobQueueUnprimedSilent,
    name: "r9_job_queue_unprimed_silent",
    authors: ["dmabuf-lock developers"],
    description: "Lockdep control: the R9 mistake without priming goes unreported",
    license: "GPL",
}

struct R9JobQueueUnprimedSilent;

impl kernel::Module for R9JobQueueUnprimedSilent {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let job_queue = KBox::pin_init(new_mutex!(KVec::<u64>::new(), "job_queue"), GFP_KERNEL)?;
        let mut queue = job_queue.lock();
        queue.push(1, GFP_KERNEL)?;
        Ok(Self)
    }
}
