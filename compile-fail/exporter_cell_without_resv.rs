//! expect-error: E0596
//!
//! R10: data guarded by the buffer's reservation (`ResvCell`) is reached with a proof that the
//! reservation is held. `begin_cpu_access` runs without it and gets no proof, and the cell's
//! one way in without a proof needs `&mut`, which a callback on a shared buffer never has.

use crate::dmabuf_lock::{
    dmabuf::{ExportOps, ExportedAttachment, Exporter, PageMapping},
    resv::{ResvCell, ResvHeld},
};
use kernel::{dma::DataDirection, page::Page, prelude::*};

/// A buffer of pages whose placement is guarded by its reservation.
pub struct Pages {
    pages: KVec<Page>,
    moves: ResvCell<u32>,
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

    fn begin_cpu_access(&self, _dir: DataDirection) -> Result {
        *self.moves.get_mut_unlocked() += 1;
        Ok(())
    }
}
