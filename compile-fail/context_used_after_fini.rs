//! expect-error: E0716
//!
//! R6: a context is finalised when it goes out of scope and is never used again; the pinned
//! handle cannot escape that scope.

use crate::dmabuf_lock::acquire::AcquireCtx;
use pin_init::stack_pin_init;

pub fn snippet() {
    let escaped;
    {
        stack_pin_init!(let ctx = AcquireCtx::new());
        escaped = ctx;
    }
    let round = escaped.begin(None);
    round.done();
}
