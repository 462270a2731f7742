// SPDX-License-Identifier: GPL-2.0

//! expect-splat: possible circular locking dependency detected[\s\S]*dmabuf_lock_export_list[\s\S]*fs_reclaim
//!
//! Deliberately wrong (R2): a driver allocates with `GFP_KERNEL` inside `ExportList::visit`,
//! whose closure runs with the list's mutex held. Its shrinker visits the same list from
//! reclaim (`drop_caches`, where the library's `ReclaimScope` holds `fs_reclaim`), so the mutex
//! is taken inside reclaim and reclaim inside the mutex: an allocation that reclaims while the
//! mutex is held would wait for itself. `ExportList::visit` says the closure must not allocate.
//!
//! Its correct twin is `r2_export_list_visit_allocates_good.rs`.

#[path = "../../rust/dmabuf_lock/mod.rs"]
pub mod dmabuf_lock;

pub mod common;

use common::{drop_caches, init_task};
use core::ops::ControlFlow;
use dmabuf_lock::{
    dmabuf::{ExportList, ExportOps, ExportedAttachment, ExportedBuf, Exporter, PageMapping},
    lockdep::ReclaimScope,
    resv::ResvHeld,
    shrinker::{ScanResult, Shrink, ShrinkControl, Shrinker},
};
use kernel::{
    dma::DataDirection,
    page::PAGE_SIZE,
    prelude::*,
    sync::atomic::{Atomic, Relaxed},
};

module! {
    type: R2ExportListVisitAllocatesBad,
    name: "r2_export_list_visit_allocates_bad",
    authors: ["dmabuf-lock developers"],
    description: "Lockdep negative test: an allocation inside an export list's visit (R2)",
    license: "GPL",
}

/// A buffer that is never mapped: only its place on the list matters here.
struct Bo(u32);

static BO_OPS: ExportOps<Bo> = ExportOps::new();

#[vtable]
impl Exporter for Bo {
    const OPS: &'static ExportOps<Self> = &BO_OPS;

    fn map<'a>(
        &'a self,
        _held: &mut ResvHeld<'_>,
        _attachment: &ExportedAttachment,
        _dir: DataDirection,
    ) -> Result<PageMapping<'a>> {
        Err(ENODEV)
    }
}

/// The driver's buffers, and how often reclaim visited them.
struct Pool {
    buffers: ExportList<Bo>,
    visits: Atomic<u32>,
}

impl Shrink for Pool {
    fn count(&self) -> usize {
        1
    }

    fn scan(&self, reclaim: &ReclaimScope<'_>, _control: &mut ShrinkControl) -> ScanResult {
        self.buffers.visit(usize::MAX, |buf| {
            self.visits.add(1, Relaxed);
            drop(reclaim.try_lock(buf.resv()));
            ControlFlow::Continue(())
        });
        ScanResult::Freed(0)
    }
}

struct R2ExportListVisitAllocatesBad;

impl kernel::Module for R2ExportListVisitAllocatesBad {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let task = init_task()?;
        let pool = Pool {
            buffers: ExportList::new()?,
            visits: Atomic::new(0),
        };
        let shrinker = Shrinker::register(&task, c"r2_export_list", pool)?;
        let buf = ExportedBuf::new_listed(&task, PAGE_SIZE, &shrinker.buffers, |_| Ok(Bo(1)))?;
        let mut ids = KVec::<u32>::with_capacity(1, GFP_KERNEL)?;
        let mut seen = false;
        shrinker.buffers.visit(1, |buf| {
            let _ = ids.push_within_capacity(buf.data().0);
            // Wrong: allocates with the list's mutex held.
            seen = KVec::<u32>::with_capacity(1, GFP_KERNEL).is_ok();
            ControlFlow::Continue(())
        });
        drop(ids);
        drop_caches()?;
        let visits = shrinker.visits.load(Relaxed);
        drop(shrinker);
        drop(buf);
        if !seen || visits == 0 {
            pr_err!("the list was not visited ({seen}, {visits} visits from reclaim)\n");
            return Err(EINVAL);
        }
        Ok(Self)
    }
}
