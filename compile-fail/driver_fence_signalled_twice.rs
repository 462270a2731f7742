//! expect-error: E0382
//!
//! R8: a fence signals exactly once. `DriverFence::signal` consumes the fence, so a second
//! signal is a use of a moved value.

use crate::dmabuf_lock::fence::DriverFence;

/// Exercises the case described at the top of this file.
pub fn snippet(fence: DriverFence) {
    fence.signal(Ok(()));
    fence.signal(Ok(()));
}
