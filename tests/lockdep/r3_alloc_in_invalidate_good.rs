// SPDX-License-Identifier: GPL-2.0

//! The correct twin of `r3_alloc_in_invalidate_bad.rs` (R2, R3): the invalidate callback only
//! waits for the job's fence and counts, in memory allocated when the userptr was made. The real
//! invalidation (`munmap` of the range while a job uses it) waits for the fence, and loading the
//! module must leave the kernel silent.

pub mod common;
#[path = "../../rust/dmabuf_lock/mod.rs"]
pub mod dmabuf_lock;
pub mod userptr_common;

use common::init_task;
use kernel::prelude::*;
use userptr_common::unmap_under_job;

module! {
    type: R3AllocInInvalidateGood,
    name: "r3_alloc_in_invalidate_good",
    authors: ["dmabuf-lock developers"],
    description: "Lockdep positive test: a userptr's invalidate callback only waits (R2, R3)",
    license: "GPL",
}

struct R3AllocInInvalidateGood;

impl kernel::Module for R3AllocInInvalidateGood {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        Ok(Self)
    }
}

/// Nothing to record beyond the count the callback keeps.
fn record() {}

/// The case runs as a KUnit case, once the module is live (see the bad twin).
#[kunit_tests(dmabuf_lock_r3_alloc_in_invalidate_good)]
mod case {
    use super::*;

    #[test]
    fn run() -> Result {
        let mut task = init_task()?;
        let invalidations = unmap_under_job(&mut task, record)?;
        if invalidations == 0 {
            return Err(EINVAL);
        }
        pr_info!("munmap waited for the job in {invalidations} invalidations\n");
        Ok(())
    }
}
