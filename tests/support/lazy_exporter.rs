// SPDX-License-Identifier: GPL-2.0

//! A buffer that processes map through the library's fault path ([`Exporter::fault`]) and that
//! no device can map, counting its faults: what the KUnit cases of the fault handler
//! (`tests/kunit/exporter_test.rs`) and the lockdep twins `r1_fault_path_user_copy_{bad,good}`
//! export.

use crate::dmabuf_lock::{
    context::MayBlock,
    dmabuf::{ExportOps, ExportedAttachment, ExportedBuf, Exporter, PageMapping},
    resv::ResvHeld,
};
use kernel::{
    dma::DataDirection,
    page::{Page, PAGE_SIZE},
    prelude::*,
    sync::atomic::{Atomic, Relaxed},
};

/// Zeroed pages, each inserted into a process's mapping by the library's fault handler the
/// first time it is touched there.
pub(crate) struct LazyPages {
    pages: KVec<Page>,
    faults: Atomic<u32>,
}

static LAZY_PAGES_OPS: ExportOps<LazyPages> = ExportOps::new();

impl LazyPages {
    /// Exports `count` zeroed pages.
    pub(crate) fn export(task: &MayBlock, count: usize) -> Result<ExportedBuf<Self>> {
        let mut pages = KVec::with_capacity(count, GFP_KERNEL)?;
        for _ in 0..count {
            pages.push(Page::alloc_page(GFP_KERNEL | __GFP_ZERO)?, GFP_KERNEL)?;
        }
        ExportedBuf::new(task, count * PAGE_SIZE, |_| {
            Ok(Self {
                pages,
                faults: Atomic::new(0),
            })
        })
    }

    /// How many times the fault handler has asked for a page.
    pub(crate) fn faults(&self) -> u32 {
        self.faults.load(Relaxed)
    }
}

#[vtable]
impl Exporter for LazyPages {
    const OPS: &'static ExportOps<Self> = &LAZY_PAGES_OPS;

    /// No device maps it: only processes do.
    fn map<'a>(
        &'a self,
        _held: &mut ResvHeld<'_>,
        _attachment: &ExportedAttachment,
        _dir: DataDirection,
    ) -> Result<PageMapping<'a>> {
        Err(ENODEV)
    }

    fn fault<'a>(&'a self, _held: &'a mut ResvHeld<'_>, pgoff: usize) -> Result<&'a Page> {
        self.faults.add(1, Relaxed);
        self.pages.get(pgoff).ok_or(EINVAL)
    }
}
