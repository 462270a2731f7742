// SPDX-License-Identifier: GPL-2.0

//! `shrinker_scan_drops.ko`: leaks a shrinker whose scan drops another shrinker of the module,
//! as safe code may. Unloading the module while that scan runs must not deadlock:
//! `dmabuf_lock.ko` frees the leaked shrinker as the module goes, waiting for the scan, and the
//! drop in the scan takes the core's shrinker list lock (`rust/reclaim.c`, which frees leaked
//! shrinkers without holding it). The boot `boot:shrinker-scan-drops-while-unloaded` runs
//! `drop_caches` and unloads the module during the scan.

use kernel::{
    prelude::*,
    sync::{new_mutex, Mutex},
    time::{delay::fsleep, Delta},
};

#[path = "../../rust/dmabuf_lock/mod.rs"]
pub mod dmabuf_lock;

use dmabuf_lock::{
    context::MayBlock,
    lockdep::ReclaimScope,
    shrinker::{ScanResult, Shrink, ShrinkControl, Shrinker},
};

module! {
    type: ShrinkerScanDrops,
    name: "shrinker_scan_drops",
    authors: ["dmabuf-lock developers"],
    description: "Soundness test: a leaked shrinker's scan drops a shrinker while its module goes",
    license: "GPL",
}

/// Never anything to free.
struct Idle;

impl Shrink for Idle {
    fn count(&self) -> usize {
        0
    }

    fn scan(&self, _reclaim: &ReclaimScope<'_>, _control: &mut ShrinkControl) -> ScanResult {
        ScanResult::Stop
    }
}

/// Holds the other shrinker; its first scan waits a while, then drops it.
#[pin_data]
struct Holder {
    #[pin]
    idle: Mutex<Option<Shrinker<Idle>>>,
}

impl Shrink for Holder {
    fn count(&self) -> usize {
        1024
    }

    fn scan(&self, _reclaim: &ReclaimScope<'_>, _control: &mut ShrinkControl) -> ScanResult {
        let mut idle = self.idle.lock();
        if idle.is_some() {
            pr_info!("shrinker_scan_drops: scan\n");
            // The boot unloads the module now.
            fsleep(Delta::from_millis(1000));
            *idle = None;
            pr_info!("shrinker_scan_drops: dropped\n");
        }
        ScanResult::Stop
    }
}

struct ShrinkerScanDrops;

impl kernel::Module for ShrinkerScanDrops {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let task = MayBlock::new()?;
        let idle = Shrinker::register(&task, c"shrinker_scan_drops_idle", Idle)?;
        let holder = pin_init!(Holder {
            idle <- new_mutex!(Some(idle)),
        });
        core::mem::forget(Shrinker::register(&task, c"shrinker_scan_drops", holder)?);
        Ok(Self)
    }
}
