// SPDX-License-Identifier: GPL-2.0

//! The correct twin of `r4_alloc_in_irq_handler_bad.rs` (R4): what the completion interrupt
//! records was allocated before the job's fence was published (here a static slot), so the
//! handler only writes it and signals. Loading it must leave the kernel silent.

pub mod common;
#[path = "../../rust/dmabuf_lock/mod.rs"]
pub mod dmabuf_lock;

use common::{init_task, run_irq_job};
use kernel::{
    prelude::*,
    sync::atomic::{Atomic, Relaxed},
};

module! {
    type: R4AllocInIrqHandlerGood,
    name: "r4_alloc_in_irq_handler_good",
    authors: ["dmabuf-lock developers"],
    description: "Lockdep positive test: a completion interrupt that only signals (R4)",
    license: "GPL",
}

/// The seqno the completion interrupt last reported.
static LAST_DONE: Atomic<u64> = Atomic::new(0);

struct R4AllocInIrqHandlerGood;

impl kernel::Module for R4AllocInIrqHandlerGood {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        Ok(Self)
    }
}

/// The case runs as a KUnit case, once the module is live: the library refuses an interrupt job
/// during a module's `init` (`EBUSY`), since its timers run the module's code.
#[kunit_tests(dmabuf_lock_r4_alloc_in_irq_handler_good)]
mod case {
    use super::*;

    #[test]
    fn run() -> Result {
        let mut task = init_task()?;
        run_irq_job(&mut task, |fence, _irq| {
            LAST_DONE.store(fence.seqno(), Relaxed);
            Ok(())
        })?;
        pr_info!(
            "job {} signalled from the completion interrupt\n",
            LAST_DONE.load(Relaxed)
        );
        Ok(())
    }
}
