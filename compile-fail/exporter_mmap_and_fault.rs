//! expect-error: E0080
//!
//! An exporter with `fault` gets the library's `mmap`, which sets the vma up for the fault
//! handler that locks the reservation inside `mmap_lock` (R1); a driver's own `mmap` beside it
//! would be left unused or would map pages that the fault path does not know about. `ExportOps::new` refuses the pair when the driver's `static` is
//! evaluated.

use crate::dmabuf_lock::{
    dmabuf::{ExportOps, ExportedAttachment, Exporter, PageMapping},
    resv::ResvHeld,
};
use kernel::{dma::DataDirection, mm::virt::VmaNew, page::Page, prelude::*};

/// A buffer of pages.
pub struct Pages {
    pages: KVec<Page>,
}

static PAGES_OPS: ExportOps<Pages> = ExportOps::new();

#[vtable]
impl Exporter for Pages {
    const OPS: &'static ExportOps<Self> = &PAGES_OPS;

    fn map<'a>(
        &'a self,
        _held: &mut ResvHeld<'_>,
        attachment: &ExportedAttachment,
        dir: DataDirection,
    ) -> Result<PageMapping<'a>> {
        PageMapping::new(attachment.device(), &self.pages, dir)
    }

    fn mmap(&self, _held: &mut ResvHeld<'_>, _vma: &VmaNew, _pgoff: usize) -> Result {
        Ok(())
    }

    fn fault<'a>(&'a self, _held: &'a mut ResvHeld<'_>, pgoff: usize) -> Result<&'a Page> {
        self.pages.get(pgoff).ok_or(EINVAL)
    }
}
