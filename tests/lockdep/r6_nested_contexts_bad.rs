// SPDX-License-Identifier: GPL-2.0

//! expect-splat: possible recursive locking detected[\s\S]*reservation_ww_class_acquire
//!
//! Deliberately wrong (R6): two acquire contexts alive at once on one task. The types cannot
//! see that two lockers on one stack belong to one task, but lockdep can: each context is a
//! `reservation_ww_class_acquire` lock, and taking the second while holding the first is
//! reported as recursive locking.
//!
//! Its correct twin is `r6_nested_contexts_good.rs`.

pub mod common;
#[path = "../../rust/dmabuf_lock/mod.rs"]
pub mod dmabuf_lock;

use common::init_task;
use dmabuf_lock::{
    locker::{LockerFlags, ResvLocker},
    resv::OwnedResv,
};
use kernel::prelude::*;
use pin_init::stack_pin_init;

module! {
    type: R6NestedContextsBad,
    name: "r6_nested_contexts_bad",
    authors: ["dmabuf-lock developers"],
    description: "Lockdep negative test: two acquire contexts on one task (R6)",
    license: "GPL",
}

struct R6NestedContextsBad;

impl kernel::Module for R6NestedContextsBad {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let task = init_task()?;
        let a = KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?;
        let b = KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?;
        stack_pin_init!(let first = ResvLocker::new(LockerFlags::default()));
        first.as_mut().lock_slice(&task, &[&a])?;
        stack_pin_init!(let second = ResvLocker::new(LockerFlags::default()));
        second.as_mut().lock_slice(&task, &[&b])?;
        pr_info!("holding two acquire contexts at once\n");
        Ok(Self)
    }
}
