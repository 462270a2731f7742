// SPDX-License-Identifier: GPL-2.0

//! expect-splat: possible circular locking dependency detected[\s\S]*Chain exists of:\s*fs_reclaim --> dmabuf_lock_mmu_notifier --> notifier_lock
//!
//! Deliberately wrong (R3, R9): a userptr driver's notifier lock is taken inside mmu-notifier
//! invalidations (which run in reclaim, and wait for the range's fences there), and its
//! submission path allocates with `GFP_KERNEL` while holding it. Reclaim would then wait for the
//! invalidation, which waits for the lock, whose holder waits for reclaim. The priming
//! (`Level::MmuNotifier`, ordered inside `fs_reclaim` by `dmabuf_lock.ko` as the kernel's
//! `dma_resv_lockdep()` orders its own notifier map) makes lockdep report it at the first
//! allocation, before any invalidation has run.
//!
//! Its correct twin is `r3_notifier_lock_held_while_allocating_good.rs`.

#[path = "../../rust/dmabuf_lock/mod.rs"]
pub mod dmabuf_lock;

pub mod common;

use common::{init_task, prime_notifier_lock};
use kernel::{new_mutex, prelude::*};

module! {
    type: R3NotifierLockHeldWhileAllocatingBad,
    name: "r3_notifier_lock_held_while_allocating_bad",
    authors: ["dmabuf-lock developers"],
    description: "Lockdep negative test: a notifier lock held while allocating (R3, R9)",
    license: "GPL",
}

struct R3NotifierLockHeldWhileAllocatingBad;

impl kernel::Module for R3NotifierLockHeldWhileAllocatingBad {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let ranges = KBox::pin_init(new_mutex!(KVec::<u64>::new(), "notifier_lock"), GFP_KERNEL)?;
        prime_notifier_lock(&init_task()?, &ranges)?;
        let mut ranges = ranges.lock();
        ranges.push(0x1000, GFP_KERNEL)?;
        Ok(Self)
    }
}
