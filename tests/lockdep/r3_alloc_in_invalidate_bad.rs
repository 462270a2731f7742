// SPDX-License-Identifier: GPL-2.0

//! expect-splat: possible circular locking dependency detected[\s\S]*Chain exists of:\s*fs_reclaim --> dmabuf_lock_mmu_notifier --> dmabuf_lock_userptr_notifier
//!
//! Deliberately wrong (R2, R3): a userptr's invalidate callback allocates with `GFP_KERNEL`
//! after waiting for the job's fence. The callback runs when the address space changes, which
//! reclaim does too: an allocation there may recurse into reclaim, which waits for this very
//! invalidation. The library runs the callback inside its mmu-notifier scope
//! (`Level::MmuNotifier`, ordered inside `fs_reclaim` when `dmabuf_lock.ko` loads), so lockdep
//! reports the allocation the first time a real invalidation (here `munmap` of the range while
//! a job uses it) runs the callback.
//!
//! Its correct twin is `r3_alloc_in_invalidate_good.rs`.

pub mod common;
#[path = "../../rust/dmabuf_lock/mod.rs"]
pub mod dmabuf_lock;
pub mod userptr_common;

use common::init_task;
use kernel::prelude::*;
use userptr_common::unmap_under_job;

module! {
    type: R3AllocInInvalidateBad,
    name: "r3_alloc_in_invalidate_bad",
    authors: ["dmabuf-lock developers"],
    description: "Lockdep negative test: GFP_KERNEL in a userptr's invalidate callback (R2, R3)",
    license: "GPL",
}

struct R3AllocInInvalidateBad;

impl kernel::Module for R3AllocInInvalidateBad {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        Ok(Self)
    }
}

/// A record of the invalidation, allocated in the callback: wrong.
fn record() {
    drop(KBox::new(0u64, GFP_KERNEL));
}

/// The case runs as a KUnit case, once the module is live: the library refuses a userptr
/// during a module's `init` (`EBUSY`), since its callback is the module's code.
#[kunit_tests(dmabuf_lock_r3_alloc_in_invalidate_bad)]
mod case {
    use super::*;

    #[test]
    fn run() -> Result {
        let mut task = init_task()?;
        let invalidations = unmap_under_job(&mut task, record)?;
        pr_info!("allocated in {invalidations} invalidations\n");
        Ok(())
    }
}
