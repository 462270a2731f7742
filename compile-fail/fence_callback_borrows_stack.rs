//! expect-error: E0597
//!
//! Soundness: a fence callback may run long after it was registered (in the signaller's
//! context, maybe an interrupt), and a leaked one is never removed, so its function may not
//! borrow anything.

use crate::dmabuf_lock::fence::{Fence, FenceCallback};
use kernel::prelude::*;

/// Exercises the case described at the top of this file.
pub fn snippet(fence: &Fence) -> Result {
    let local = KBox::new(7u32, GFP_KERNEL)?;
    let borrowed = &*local;
    let mut cb = KBox::pin_init(
        FenceCallback::new(move || {
            let _seen = *borrowed;
        }),
        GFP_KERNEL,
    )?;
    cb.as_mut().add(fence)?;
    core::mem::forget(cb);
    Ok(())
}
