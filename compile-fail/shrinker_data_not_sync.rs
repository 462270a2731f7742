//! expect-error: E0277
//!
//! A shrinker's `count` and `scan` may run on several CPUs at once, so its data must be `Sync`
//! (`Shrink: Send + Sync + 'static`). A hit counter in a `Cell` is a data race there:
//! "`Cell<usize>` cannot be shared between threads safely". An atomic compiles.

use crate::dmabuf_lock::{
    lockdep::ReclaimScope,
    shrinker::{ScanResult, Shrink, ShrinkControl},
};
use core::cell::Cell;

/// A cache that counts its scans without synchronisation.
pub struct Cache {
    scans: Cell<usize>,
}

impl Shrink for Cache {
    fn count(&self) -> usize {
        0
    }

    fn scan(&self, _reclaim: &ReclaimScope<'_>, _control: &mut ShrinkControl) -> ScanResult {
        self.scans.set(self.scans.get() + 1);
        ScanResult::Stop
    }
}
