// SPDX-License-Identifier: GPL-2.0

//! expect-splat: inconsistent \{HARDIRQ-ON-W\} -> \{IN-HARDIRQ-W\} usage[\s\S]*\(fs_reclaim\)
//!
//! Deliberately wrong (R4): the completion interrupt's handler allocates with `GFP_KERNEL`
//! before it signals the job's fence, through the kernel's allocator, which the library's types
//! cannot take away. The handler runs in hard interrupt context, where
//! `dma_fence_begin_signalling()` annotates nothing; lockdep sees the allocation all the same,
//! as reclaim (`fs_reclaim`) entered from a hard interrupt, and `might_sleep()` reports it too
//! ("sleeping function called from invalid context").
//!
//! Its correct twin is `r4_alloc_in_irq_handler_good.rs`.

pub mod common;
#[path = "../../rust/dmabuf_lock/mod.rs"]
pub mod dmabuf_lock;

use common::{init_task, run_irq_job};
use kernel::prelude::*;

module! {
    type: R4AllocInIrqHandlerBad,
    name: "r4_alloc_in_irq_handler_bad",
    authors: ["dmabuf-lock developers"],
    description: "Lockdep negative test: GFP_KERNEL in a completion interrupt's handler (R4)",
    license: "GPL",
}

struct R4AllocInIrqHandlerBad;

impl kernel::Module for R4AllocInIrqHandlerBad {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        Ok(Self)
    }
}

/// The case runs as a KUnit case, once the module is live: the library refuses an interrupt job
/// during a module's `init` (`EBUSY`), since its timers run the module's code.
#[kunit_tests(dmabuf_lock_r4_alloc_in_irq_handler_bad)]
mod case {
    use super::*;

    #[test]
    fn run() -> Result {
        let mut task = init_task()?;
        run_irq_job(&mut task, |fence, _irq| {
            let record = KBox::new(fence.seqno(), GFP_KERNEL);
            record.map(drop).map_err(Error::from)
        })?;
        pr_info!("allocated in the completion interrupt\n");
        Ok(())
    }
}
