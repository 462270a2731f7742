// SPDX-License-Identifier: GPL-2.0

//! The correct twin of `r3_notifier_lock_held_while_allocating_bad.rs` (R3, R9): the same
//! priming, and the submission path allocates before it takes the notifier lock. Loading it
//! must leave lockdep silent.

#[path = "../../rust/dmabuf_lock/mod.rs"]
pub mod dmabuf_lock;

pub mod common;

use common::{init_task, prime_notifier_lock};
use kernel::{new_mutex, prelude::*};

module! {
    type: R3NotifierLockHeldWhileAllocatingGood,
    name: "r3_notifier_lock_held_while_allocating_good",
    authors: ["dmabuf-lock developers"],
    description: "Lockdep positive test: a notifier lock taken after allocating (R3, R9)",
    license: "GPL",
}

struct R3NotifierLockHeldWhileAllocatingGood;

impl kernel::Module for R3NotifierLockHeldWhileAllocatingGood {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let ranges = KBox::pin_init(new_mutex!(KVec::<u64>::new(), "notifier_lock"), GFP_KERNEL)?;
        prime_notifier_lock(&init_task()?, &ranges)?;
        let mut reserved = KVec::with_capacity(1, GFP_KERNEL)?;
        reserved.push(0x1000, GFP_ATOMIC)?;
        let mut ranges = ranges.lock();
        core::mem::swap(&mut *ranges, &mut reserved);
        Ok(Self)
    }
}
