// SPDX-License-Identifier: GPL-2.0

//! The correct twin of `r2_export_list_visit_allocates_bad.rs` (R2): the vector is allocated
//! before the visit, whose closure only pushes within its capacity, and the shrinker visits the
//! same list from reclaim (`drop_caches`). Lockdep must stay silent.

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
    type: R2ExportListVisitAllocatesGood,
    name: "r2_export_list_visit_allocates_good",
    authors: ["dmabuf-lock developers"],
    description: "Lockdep positive test: an export list visited without allocating (R2)",
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

struct R2ExportListVisitAllocatesGood;

impl kernel::Module for R2ExportListVisitAllocatesGood {
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
            seen = ids.push_within_capacity(buf.data().0).is_ok();
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
