//! expect-error: E0599
//!
//! R8: a completion interrupt's handler cannot keep its job's fence from signalling. It gets the
//! fence as a `&Fence` to read and returns the job's outcome, and the library signals the fence
//! with it, before the watchdog is cancelled. With no `DriverFence` in hand, the handler can
//! neither signal the fence itself nor keep it (forget it, park it in a static) so that it never
//! signals: "no method named `signal` found for reference `&Fence`".

use crate::dmabuf_lock::{context::MayBlock, fence::FenceTimeline, signalling::PreparedIrqJob};
use kernel::prelude::*;

/// Exercises the case described at the top of this file.
pub fn snippet(task: &MayBlock, timeline: &FenceTimeline) -> Result {
    let job = PreparedIrqJob::new(task, timeline, 1000, |fence, _irq| {
        fence.signal(Ok(()));
        Ok(())
    })?;
    drop(job);
    Ok(())
}
