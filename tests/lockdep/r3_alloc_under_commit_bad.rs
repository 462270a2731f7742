// SPDX-License-Identifier: GPL-2.0

//! expect-splat: possible circular locking dependency detected[\s\S]*Chain exists of:\s*fs_reclaim --> dmabuf_lock_mmu_notifier --> dmabuf_lock_userptr_notifier
//!
//! Deliberately wrong (R2, R3): a userptr submission allocates with `GFP_KERNEL` while its
//! commit (the range's notifier lock) is held. An invalidation from reclaim takes that lock and
//! waits for the job's fence, so reclaim entered from the allocation could wait for the lock its
//! own task holds. `UserRange::register` primed the notifier lock inside the mmu-notifier scope
//! (R9), so lockdep reports the allocation at once, before any invalidation has run.
//!
//! Its correct twin is `r3_alloc_under_commit_good.rs`.

pub mod common;
#[path = "../../rust/dmabuf_lock/mod.rs"]
pub mod dmabuf_lock;
pub mod userptr_common;

use common::init_task;
use kernel::prelude::*;
use userptr_common::map_userptr;

module! {
    type: R3AllocUnderCommitBad,
    name: "r3_alloc_under_commit_bad",
    authors: ["dmabuf-lock developers"],
    description: "Lockdep negative test: GFP_KERNEL while a userptr commit is held (R2, R3)",
    license: "GPL",
}

struct R3AllocUnderCommitBad;

impl kernel::Module for R3AllocUnderCommitBad {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        Ok(Self)
    }
}

/// The case runs as a KUnit case, once the module is live: the library refuses a userptr
/// during a module's `init` (`EBUSY`), since its callback is the module's code.
#[kunit_tests(dmabuf_lock_r3_alloc_under_commit_bad)]
mod case {
    use super::*;

    #[test]
    fn run() -> Result {
        let task = init_task()?;
        let (range, _addr) = map_userptr(&task, || {})?;
        let pages = range.read_pages(&task, true)?;
        let committed = range.commit(&task, &pages)?;
        // Wrong: the job's record is allocated under the commit.
        let record = KBox::new(pages.len(), GFP_KERNEL)?;
        drop(committed);
        pr_info!("allocated a record of {} pages under the commit\n", *record);
        Ok(())
    }
}
