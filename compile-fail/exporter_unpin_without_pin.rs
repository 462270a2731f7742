//! expect-error: E0080
//!
//! An exporter's `unpin` is called by the core only after its `pin`: implemented alone it would
//! silently never run (the buffer would look pinned forever to the driver's own counting).
//! `ExportOps::new` refuses it when the driver's `static` is evaluated. (`vunmap` without
//! `vmap` is refused the same way.)

use crate::dmabuf_lock::{
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

    fn unpin(&self, _held: &mut ResvHeld<'_>, _attachment: &ExportedAttachment) {}

    fn map<'a>(
        &'a self,
        _held: &mut ResvHeld<'_>,
        attachment: &ExportedAttachment,
        dir: DataDirection,
    ) -> Result<PageMapping<'a>> {
        PageMapping::new(attachment.device(), &self.pages, dir)
    }
}
