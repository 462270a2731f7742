//! expect-error: E0308
//!
//! R2: a shrinker's scan runs in reclaim, where a reservation may only be trylocked. The scan
//! gets a `ReclaimScope`, not a `MayBlock`, so `Resv::lock` is a type error
//! there: "expected `&MayBlock`, found `&ReclaimScope<'_>`". `reclaim.try_lock()` compiles.

use crate::dmabuf_lock::{
    lockdep::ReclaimScope,
    resv::OwnedResv,
    shrinker::{ScanResult, Shrink, ShrinkControl},
};

/// A buffer that reclaim would evict.
pub struct Buffer {
    resv: OwnedResv,
}

impl Shrink for Buffer {
    fn count(&self) -> usize {
        1
    }

    fn scan(&self, reclaim: &ReclaimScope<'_>, _control: &mut ShrinkControl) -> ScanResult {
        let guard = self.resv.lock(reclaim);
        drop(guard);
        ScanResult::Freed(0)
    }
}
