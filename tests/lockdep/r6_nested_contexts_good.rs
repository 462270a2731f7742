// SPDX-License-Identifier: GPL-2.0

//! The correct twin of `r6_nested_contexts_bad.rs` (R6): the same two objects, locked in one
//! acquire context. Loading it must leave lockdep silent.

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
    type: R6NestedContextsGood,
    name: "r6_nested_contexts_good",
    authors: ["dmabuf-lock developers"],
    description: "Lockdep positive test: several objects in one acquire context (R6)",
    license: "GPL",
}

struct R6NestedContextsGood;

impl kernel::Module for R6NestedContextsGood {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let task = init_task()?;
        let a = KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?;
        let b = KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?;
        stack_pin_init!(let locker = ResvLocker::new(LockerFlags::default()));
        locker.as_mut().lock_slice(&task, &[&a, &b])?;
        pr_info!(
            "holding {} reservations in one acquire context\n",
            locker.locked().len()
        );
        Ok(Self)
    }
}
