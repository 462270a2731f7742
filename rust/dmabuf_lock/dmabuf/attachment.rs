// SPDX-License-Identifier: GPL-2.0

//! An importer's dynamic attachment to a dma-buf: mapped and unmapped under the buffer's
//! reservation, and unmapped by the library when the exporter moves the buffer (R10).

use super::super::{
    context::MayBlock,
    fence::ModuleRef,
    resv::{HoldsResv, ResvCell, ResvHeld},
};
use super::{check_held, DmaBuf};
use core::{mem::ManuallyDrop, ptr::NonNull};
use kernel::{
    bindings, device::Device, dma::DataDirection, error::from_err_ptr, prelude::*,
    scatterlist::SGTable, sync::aref::ARef,
};

/// A mapping of an attachment for its device: the `sg_table` the exporter returned.
///
/// # Invariants
///
/// `sgt` was returned by `dma_buf_map_attachment()` for `attach` in direction `dir` and is not
/// unmapped yet.
pub struct Mapping {
    sgt: NonNull<bindings::sg_table>,
    dir: DataDirection,
}

// SAFETY: The mapping is a pointer to exporter-owned memory, handed between tasks only under the
// buffer's reservation (it lives in a `ResvCell`).
unsafe impl Send for Mapping {}

impl Mapping {
    /// Returns the mapped entries (DMA addresses and lengths for the importer's device).
    ///
    /// ```ignore
    /// let segments = mapping.table().iter().count();
    /// ```
    pub fn table(&self) -> &SGTable {
        // SAFETY: The table stays mapped, and unchanged, until it is unmapped, which needs the
        // `ResvCell` mutably, and so cannot happen while `self` is borrowed (type invariant).
        unsafe { SGTable::from_raw(self.sgt.as_ptr()) }
    }
}

/// An importer's dynamic attachment (`dma_buf_dynamic_attach()`): the exporter may move the
/// buffer at any time with its reservation held, and tells the importer through
/// `invalidate_mappings`, which this type implements by unmapping.
///
/// Mapping and unmapping need a proof that the buffer's reservation is held (R10), borrowed
/// mutably because the exporter's callbacks, which they run, may run this attachment's
/// `invalidate_mappings` with a proof of their own. A mapping borrowed from
/// [`DynamicAttachment::map`] lives no longer than the caller's proof, so it cannot be used
/// after the reservation is dropped, when the exporter may invalidate it.
///
/// Dropping the attachment unmaps and detaches; it takes the reservation itself, so drop it
/// with no reservation held. Where that is impossible (a drop in atomic context, which
/// [`MayBlock::new`] refuses with a warning) the attachment is leaked whole: it stays attached
/// and keeps the buffer and this module, whose code its callback is, alive.
///
/// # Invariants
///
/// `attach` is the attachment of `inner.buf` for `inner.dev`, made with `ATTACH_OPS` and
/// `inner.mapping` (pinned in its box) as its private data, and stays attached until `drop`,
/// which releases `inner` only after `dma_buf_detach()`.
///
/// # Examples
///
/// (KUnit case `dmabuf_lock_dmabuf::dynamic_attachment_maps_under_the_reservation`.)
///
/// ```ignore
/// let attachment = DynamicAttachment::new(&task, buf, dev)?;
/// let mut guard = attachment.dmabuf().resv().lock_interruptible(&task)?;
/// let segments = attachment.map(&mut guard, DataDirection::Bidirectional)?.table().iter().count();
/// ```
pub struct DynamicAttachment {
    attach: NonNull<bindings::dma_buf_attachment>,
    inner: ManuallyDrop<Inner>,
}

/// What a [`DynamicAttachment`] keeps alive while it is attached.
struct Inner {
    buf: ARef<DmaBuf>,
    _dev: ARef<Device>,
    /// The private data of the attachment: what `invalidate_mappings` reaches.
    mapping: Pin<KBox<ResvCell<Option<Mapping>>>>,
    _module: ModuleRef,
}

// SAFETY: The mapping is reached only under the buffer's reservation (`ResvCell`); the raw
// attachment pointer is only passed to the dma-buf core, which may be called from any task.
unsafe impl Send for DynamicAttachment {}

// SAFETY: As above: `&self` methods reach the mapping only with a proof of the reservation.
unsafe impl Sync for DynamicAttachment {}

impl DynamicAttachment {
    /// Attaches `dev` to `buf` dynamically. `dev` must be able to address the exporter's memory
    /// (its DMA mask is the importer's business, as in C).
    ///
    /// ```ignore
    /// let attachment = DynamicAttachment::new(&task, DmaBuf::from_fd(fd)?, dev.into())?;
    /// ```
    pub fn new(_task: &MayBlock, buf: ARef<DmaBuf>, dev: ARef<Device>) -> Result<Self> {
        let module = ModuleRef::this_module()?;
        let mapping = KBox::pin(ResvCell::new(buf.resv(), None), GFP_KERNEL)?;
        let dev_raw = core::ptr::from_ref(&*dev)
            .cast_mut()
            .cast::<bindings::device>();
        // SAFETY: `buf` and `dev` are live and stay referenced while attached (`Inner`); the
        // ops are static; the private data is pinned and freed only after `dma_buf_detach`.
        // The callback may run as soon as this returns (on the exporter's task); it only reads
        // its arguments and the private data.
        let attach = from_err_ptr(unsafe {
            bindings::dma_buf_dynamic_attach(
                buf.as_raw(),
                dev_raw,
                &ATTACH_OPS,
                core::ptr::from_ref(&*mapping).cast_mut().cast(),
            )
        })?;
        Ok(Self {
            // INVARIANT: Just attached, with `mapping` as private data.
            // SAFETY: `dma_buf_dynamic_attach` returns an attachment or an error pointer.
            attach: unsafe { NonNull::new_unchecked(attach) },
            inner: ManuallyDrop::new(Inner {
                buf,
                _dev: dev,
                mapping,
                _module: module,
            }),
        })
    }

    /// Returns the attached dma-buf.
    ///
    /// ```ignore
    /// let resv = attachment.dmabuf().resv();
    /// ```
    pub fn dmabuf(&self) -> &DmaBuf {
        &self.inner.buf
    }

    /// Returns the attachment's mapping, mapping it first (`dma_buf_map_attachment()`) if the
    /// exporter invalidated it or it was never mapped; `EINVAL` if `held` proves another
    /// reservation, and the exporter's error if mapping fails. A mapping made earlier in
    /// another direction is kept as it is.
    ///
    /// ```ignore
    /// let mapping = attachment.map(&mut guard, DataDirection::Bidirectional)?;
    /// ```
    pub fn map<'a>(
        &'a self,
        held: &'a mut impl HoldsResv,
        dir: DataDirection,
    ) -> Result<&'a Mapping> {
        check_held(&self.inner.buf, held)?;
        let cell = &self.inner.mapping;
        // No borrow of the cell may be alive while the core runs the exporter's callback: it
        // may move the buffer and run this attachment's `invalidate_mappings`.
        if cell.get(held)?.is_none() {
            // SAFETY: The attachment is live (type invariant) and the buffer's reservation is
            // held by the current task, as mapping a dynamic attachment requires.
            let sgt = from_err_ptr(unsafe {
                bindings::dma_buf_map_attachment(self.attach.as_ptr(), dir.into())
            })?;
            // INVARIANT: Just mapped for this attachment; never NULL on success.
            *cell.get_mut(held)? = NonNull::new(sgt).map(|sgt| Mapping { sgt, dir });
        }
        let held: &'a _ = held;
        cell.get(held)?.as_ref().ok_or(ENOMEM)
    }

    /// Unmaps the attachment if it is mapped (`dma_buf_unmap_attachment()`); returns whether it
    /// was.
    ///
    /// ```ignore
    /// attachment.unmap(&mut guard)?;
    /// ```
    pub fn unmap(&self, held: &mut impl HoldsResv) -> Result<bool> {
        check_held(&self.inner.buf, held)?;
        let mapping = self.inner.mapping.get_mut(held)?.take();
        Ok(mapping.map(|m| unmap(self.attach.as_ptr(), m)).is_some())
    }
}

/// Unmaps `mapping` of `attach`; the caller holds the buffer's reservation.
fn unmap(attach: *mut bindings::dma_buf_attachment, mapping: Mapping) {
    // SAFETY: `mapping` was made for `attach` in `mapping.dir` and is unmapped once, here
    // (type invariant of `Mapping`, which this consumes, after it left its cell); the
    // reservation is held, as the call requires for a dynamic attachment (every caller holds a
    // proof of it).
    unsafe { bindings::dma_buf_unmap_attachment(attach, mapping.sgt.as_ptr(), mapping.dir.into()) };
}

impl Drop for DynamicAttachment {
    fn drop(&mut self) {
        // Detaching needs a sleepable context; without one the attachment is leaked whole
        // (`inner` is never dropped), which keeps everything its callback needs.
        let Ok(task) = MayBlock::new() else {
            return;
        };
        let attach = self.attach.as_ptr();
        {
            let mut guard = self.inner.buf.resv().lock(&task);
            let mapping = self.inner.mapping.get_mut(&mut guard).map(Option::take);
            if let Ok(Some(mapping)) = mapping {
                unmap(attach, mapping);
            }
        }
        // SAFETY: The attachment belongs to `buf` (type invariant) and is detached once, here,
        // with no reservation held by this code; afterwards the core calls no more callbacks
        // for it.
        unsafe { bindings::dma_buf_detach(self.inner.buf.as_raw(), attach) };
        // SAFETY: Detached: nothing refers to `inner` any more, and it is dropped once.
        unsafe { ManuallyDrop::drop(&mut self.inner) };
    }
}

/// The exporter moves the buffer: unmap. Called by the dma-buf core with the buffer's
/// reservation held, on the exporter's task.
extern "C" fn invalidate_mappings(attach: *mut bindings::dma_buf_attachment) {
    // SAFETY: The core passes a live attachment made by `DynamicAttachment::new`, whose private
    // data is its pinned mapping cell (type invariant), and the dma-buf it belongs to, which is
    // referenced while attached.
    let (cell, buf) = unsafe {
        (
            &*(*attach).importer_priv.cast::<ResvCell<Option<Mapping>>>(),
            DmaBuf::from_raw((*attach).dmabuf),
        )
    };
    // SAFETY: The core holds `buf`'s reservation for the current task while this runs. Every
    // library call that makes the core run this callback took the caller's proof mutably (see
    // `ResvHeld`).
    let mut held = unsafe { ResvHeld::new(buf.resv()) };
    if let Ok(Some(mapping)) = cell.get_mut(&mut held).map(Option::take) {
        unmap(attach, mapping);
    }
}

static ATTACH_OPS: bindings::dma_buf_attach_ops = bindings::dma_buf_attach_ops {
    allow_peer2peer: false,
    invalidate_mappings: Some(invalidate_mappings),
};
