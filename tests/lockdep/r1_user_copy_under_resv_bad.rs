// SPDX-License-Identifier: GPL-2.0

//! expect-splat: possible circular locking dependency detected[\s\S]*mmap_lock[\s\S]*reservation_ww_class_mutex
//!
//! Deliberately wrong (R1), the nouveau pushbuf pattern of the 2019 thread, written with the
//! safe API: copies from user memory while holding a reservation. A fault takes `mmap_lock`,
//! which the kernel's priming (and `dmabuf_lock.ko`'s) orders outside reservations, so lockdep
//! reports the copy even though this copy fails at once (`might_fault()` annotates first).
//!
//! Its correct twin is `r1_user_copy_under_resv_good.rs`.

pub mod common;
#[path = "../../rust/dmabuf_lock/mod.rs"]
pub mod dmabuf_lock;

use common::init_task;
use dmabuf_lock::resv::OwnedResv;
use kernel::{
    prelude::*,
    uaccess::{UserPtr, UserSlice},
};

module! {
    type: R1UserCopyUnderResvBad,
    name: "r1_user_copy_under_resv_bad",
    authors: ["dmabuf-lock developers"],
    description: "Lockdep negative test: user copy under a reservation (R1)",
    license: "GPL",
}

struct R1UserCopyUnderResvBad;

impl kernel::Module for R1UserCopyUnderResvBad {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let task = init_task()?;
        let resv = KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?;
        let mut relocs = [0u8; 64];
        let guard = resv.lock(&task);
        let copied = UserSlice::new(UserPtr::from_addr(0), relocs.len())
            .reader()
            .read_slice(&mut relocs);
        drop(guard);
        pr_info!("user copy under a reservation: {:?}\n", copied);
        Ok(Self)
    }
}
