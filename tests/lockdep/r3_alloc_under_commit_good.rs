// SPDX-License-Identifier: GPL-2.0

//! The correct twin of `r3_alloc_under_commit_bad.rs` (R2, R3): the job's record is allocated
//! before the commit takes the notifier lock, so nothing under the lock can enter reclaim.
//! Loading the module must leave the kernel silent.

pub mod common;
#[path = "../../rust/dmabuf_lock/mod.rs"]
pub mod dmabuf_lock;
pub mod userptr_common;

use common::init_task;
use kernel::prelude::*;
use userptr_common::map_userptr;

module! {
    type: R3AllocUnderCommitGood,
    name: "r3_alloc_under_commit_good",
    authors: ["dmabuf-lock developers"],
    description: "Lockdep positive test: allocating before a userptr commit (R2, R3)",
    license: "GPL",
}

struct R3AllocUnderCommitGood;

impl kernel::Module for R3AllocUnderCommitGood {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        Ok(Self)
    }
}

/// The case runs as a KUnit case, once the module is live (see the bad twin).
#[kunit_tests(dmabuf_lock_r3_alloc_under_commit_good)]
mod case {
    use super::*;

    #[test]
    fn run() -> Result {
        let task = init_task()?;
        let (range, _addr) = map_userptr(&task, || {})?;
        let pages = range.read_pages(&task, true)?;
        let mut record = KBox::new(0usize, GFP_KERNEL)?;
        let committed = range.commit(&task, &pages)?;
        *record = pages.len();
        drop(committed);
        pr_info!("recorded {} pages, allocated before the commit\n", *record);
        Ok(())
    }
}
