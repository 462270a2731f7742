//! expect-error: E0308
//!
//! R2: a shrinker's scan runs in reclaim, where a reservation may only be trylocked. The scan
//! gets a `ReclaimScope`, not a `MayBlock`, so the locker (`ResvLocker::lock_slice`) is a type error
//! there: "expected `&MayBlock`, found `&ReclaimScope<'_>`". `reclaim.try_lock()` compiles.

use crate::dmabuf_lock::{
    locker::{LockerFlags, ResvLocker},
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
        pin_init::stack_pin_init!(let locker = ResvLocker::new(LockerFlags::default()));
        let _ = locker.as_mut().lock_slice(reclaim, &[&self.resv]);
        ScanResult::Freed(0)
    }
}
