//! expect-error: E0599
//!
//! R10: an exporter's `map` runs with the buffer's reservation held. Its arguments prove that
//! (`ResvHeld`) but do not lead to the reservation: the exporter's view of the attachment has no
//! way to the dma-buf, so the callback cannot lock the reservation again.

use crate::dmabuf_lock::{
    context::MayBlock,
    dmabuf::{ExportOps, ExportedAttachment, Exporter, PageMapping},
    resv::ResvHeld,
};
use kernel::{dma::DataDirection, page::Page, prelude::*};

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
        let task = MayBlock::new()?;
        let _again = attachment.dmabuf().resv().lock(&task);
        PageMapping::new(attachment.device(), &self.pages, dir)
    }
}
