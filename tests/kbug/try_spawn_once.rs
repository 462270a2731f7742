// SPDX-License-Identifier: GPL-2.0

//! The body of both modules of the `Queue::try_spawn` reproducer: run one closure through
//! `try_spawn` on the system workqueue and wait until it has run, so that lockdep has seen the
//! work item's class.

use kernel::{
    prelude::*,
    sync::{Arc, Completion},
    workqueue,
};

/// Spawns a closure with `Queue::try_spawn` and waits for it.
pub(crate) fn spawn_and_wait() -> Result {
    let ran = Arc::pin_init(Completion::new(), GFP_KERNEL)?;
    let done = ran.clone();
    workqueue::system().try_spawn(GFP_KERNEL, move || done.complete_all())?;
    ran.wait_for_completion();
    Ok(())
}
