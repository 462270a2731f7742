// SPDX-License-Identifier: GPL-2.0

//! The correct twin of `r1_user_copy_under_resv_bad.rs` (R1): user memory is copied before the
//! reservation is locked. Loading it must leave lockdep silent.

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
    type: R1UserCopyUnderResvGood,
    name: "r1_user_copy_under_resv_good",
    authors: ["dmabuf-lock developers"],
    description: "Lockdep positive test: user copy before the reservation lock (R1)",
    license: "GPL",
}

struct R1UserCopyUnderResvGood;

impl kernel::Module for R1UserCopyUnderResvGood {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let task = init_task()?;
        let resv = KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?;
        let mut relocs = [0u8; 64];
        let copied = UserSlice::new(UserPtr::from_addr(0), relocs.len())
            .reader()
            .read_slice(&mut relocs);
        let guard = resv.lock(&task);
        drop(guard);
        pr_info!("user copy before the reservation: {:?}\n", copied);
        Ok(Self)
    }
}
