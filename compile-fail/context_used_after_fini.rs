//! expect-error: E0716
//!
//! R6: a context is finalised when it goes out of scope and is never used again; the pinned
//! handle cannot escape that scope.

use crate::dmabuf_lock::{acquire::AcquireCtx, context::TaskCtx};
use pin_init::stack_pin_init;

/// Exercises the case described at the top of this file.
pub fn snippet(task: &TaskCtx) {
    let escaped;
    {
        stack_pin_init!(let ctx = AcquireCtx::new());
        escaped = ctx;
    }
    let round = escaped.begin(task, None);
    round.done();
}
