//! expect-error: E0308
//!
//! R4: inside a fence-signalling critical section only allocations that cannot enter reclaim
//! are allowed. The section's allocator takes a `SectionGfp` (`Atomic` or `NoWait`), so passing
//! `GFP_KERNEL` is a type error: "expected `SectionGfp`, found `Flags`".

use crate::dmabuf_lock::context::MayBlock;
use kernel::prelude::*;

/// Exercises the case described at the top of this file.
pub fn snippet(task: &mut MayBlock) -> Result {
    let section = task.signalling_section();
    let buffer = section.alloc([0u8; 64], GFP_KERNEL)?;
    drop(buffer);
    Ok(())
}
