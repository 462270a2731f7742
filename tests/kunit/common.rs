// SPDX-License-Identifier: GPL-2.0

//! Fixtures shared by the KUnit suites.

use crate::dmabuf_lock::{context::TaskCtx, resv::OwnedResv};
use kernel::prelude::*;

/// A set of reservation objects owned by a test.
pub(crate) type Objects = KVec<Pin<KBox<OwnedResv>>>;

/// Creates `n` unlocked reservation objects.
pub(crate) fn new_resvs(n: usize) -> Result<Objects> {
    let mut v = KVec::with_capacity(n, GFP_KERNEL)?;
    for _ in 0..n {
        v.push(KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?, GFP_KERNEL)?;
    }
    Ok(v)
}

/// The task context of a KUnit case.
pub(crate) fn task() -> TaskCtx {
    // SAFETY: KUnit runs each case in a kthread of its own, outside any fence-signalling
    // critical section; cases enter sections only through the returned value.
    unsafe { TaskCtx::new() }
}
