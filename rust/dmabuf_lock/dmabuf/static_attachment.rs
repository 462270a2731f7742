// SPDX-License-Identifier: GPL-2.0

//! An importer's static attachment to a dma-buf: the exporter keeps the buffer in place (pins
//! it) while it is mapped, and the core takes the reservation around each map and unmap, so the
//! importer never holds it for them.

use super::super::context::MayBlock;
use super::{check_direction, DmaBuf};
use core::{mem::ManuallyDrop, ptr::NonNull};
use kernel::{
    bindings,
    device::Device,
    dma::DataDirection,
    error::from_err_ptr,
    prelude::*,
    scatterlist::SGTable,
    sync::{
        aref::ARef,
        atomic::{Atomic, Relaxed},
    },
};

/// An importer's static attachment (`dma_buf_attach()`): no `invalidate_mappings`, so the
/// exporter pins the buffer for every mapping instead of moving it.
///
/// Mapping and unmapping take the buffer's reservation inside the core
/// (`dma_buf_map_attachment_unlocked()`), which also waits for the buffer's kernel fences, so
/// they need a [`MayBlock`] and must be called with no reservation held. Dropping the attachment
/// detaches, which takes the reservation too; where that is impossible (a drop in atomic
/// context, which [`MayBlock::new`] refuses with a warning) the attachment is leaked whole, with
/// its buffer reference. So is an attachment dropped while one of its mappings is leaked
/// (`mem::forget`, or dropped in atomic context): the exporter must not free pages that the
/// device may still reach.
///
/// # Invariants
///
/// `attach` is a static attachment of `inner.buf` for `inner.dev`, attached until `drop`, which
/// releases `inner` only after `dma_buf_detach()`. `inner.mappings` counts the mappings made
/// with [`StaticAttachment::map`] and not unmapped.
///
/// # Examples
///
/// (KUnit case `dmabuf_lock_exporter::static_attachment_pins_while_mapped`.)
///
/// ```
/// # use dmabuf_lock::{context::MayBlock, dmabuf::{DmaBuf, StaticAttachment}};
/// # use kernel::{device::Device, dma::DataDirection, faux, sync::aref::ARef};
/// fn f(task: &MayBlock, fd: i32, dev: ARef<Device>) -> Result<usize> {
///     let attachment = StaticAttachment::new(task, DmaBuf::from_fd(fd)?, dev)?;
///     let mapping = attachment.map(task, DataDirection::ToDevice)?;
///     Ok(mapping.table().iter().count())
/// }
/// # let task = MayBlock::new()?;
/// # let faux = faux::Registration::new(c"dmabuf_lock_doctest", None)?;
/// # let dev: &Device = AsRef::<faux::Device<kernel::device::Bound>>::as_ref(&faux).as_ref();
/// // A descriptor with no file behind it (a kthread has none open):
/// assert_eq!(f(&task, -1, dev.into()).err(), Some(EBADF));
/// # Ok::<(), Error>(())
/// ```
pub struct StaticAttachment {
    attach: NonNull<bindings::dma_buf_attachment>,
    inner: ManuallyDrop<Inner>,
}

/// What a [`StaticAttachment`] keeps alive while it is attached.
struct Inner {
    buf: ARef<DmaBuf>,
    _dev: ARef<Device>,
    /// Mappings not unmapped yet: one leaked (`mem::forget`, or dropped where it cannot
    /// sleep) keeps the attachment attached, so that the exporter never frees pages its device
    /// may still reach.
    mappings: Atomic<usize>,
}

// SAFETY: The attachment is only passed to the dma-buf core, which may be called from any task;
// the core serialises its state under the buffer's reservation.
unsafe impl Send for StaticAttachment {}

// SAFETY: As above.
unsafe impl Sync for StaticAttachment {}

impl StaticAttachment {
    /// Attaches `dev` to `buf` statically. `dev` must have a DMA mask (`EINVAL` otherwise:
    /// exporters map for it); like C, the attachment does not notice the device being unbound.
    ///
    /// ```
    /// # use dmabuf_lock::{context::MayBlock, dmabuf::{DmaBuf, StaticAttachment}};
    /// # use kernel::{device::Device, faux, sync::aref::ARef};
    /// fn f(task: &MayBlock, fd: i32, dev: ARef<Device>) -> Result<StaticAttachment> {
    ///     StaticAttachment::new(task, DmaBuf::from_fd(fd)?, dev)
    /// }
    /// # let task = MayBlock::new()?;
    /// # let faux = faux::Registration::new(c"dmabuf_lock_doctest", None)?;
    /// # let dev: &Device = AsRef::<faux::Device<kernel::device::Bound>>::as_ref(&faux).as_ref();
    /// // A descriptor with no file behind it (a kthread has none open):
    /// assert_eq!(f(&task, -1, dev.into()).err(), Some(EBADF));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn new(_task: &MayBlock, buf: ARef<DmaBuf>, dev: ARef<Device>) -> Result<Self> {
        let dev_raw = super::raw_device(&dev);
        // SAFETY: `dev` is a live device; `dma_mask` is a plain field of it.
        if unsafe { (*dev_raw).dma_mask }.is_null() {
            return Err(EINVAL);
        }
        // SAFETY: `buf` and `dev` are live and stay referenced while attached (`Inner`).
        let attach = from_err_ptr(unsafe { bindings::dma_buf_attach(buf.as_raw(), dev_raw) })?;
        Ok(Self {
            // INVARIANT: Just attached.
            // SAFETY: `dma_buf_attach` returns an attachment or an error pointer.
            attach: unsafe { NonNull::new_unchecked(attach) },
            inner: ManuallyDrop::new(Inner {
                buf,
                _dev: dev,
                mappings: Atomic::new(0),
            }),
        })
    }

    /// Returns the attached dma-buf.
    ///
    /// ```
    /// # use dmabuf_lock::dmabuf::{DmaBuf, StaticAttachment};
    /// fn size(attachment: &StaticAttachment) -> usize {
    ///     attachment.dmabuf().size()
    /// }
    /// ```
    pub fn dmabuf(&self) -> &DmaBuf {
        &self.inner.buf
    }

    /// Maps the attachment for its device in direction `dir`
    /// (`dma_buf_map_attachment_unlocked()`): the core locks the reservation, has the exporter
    /// pin the buffer and map it, and waits for the buffer's kernel fences. `EINVAL` for
    /// `DataDirection::None`. Several mappings may exist at once; each is unmapped on drop.
    ///
    /// ```
    /// # use dmabuf_lock::{context::MayBlock, dmabuf::StaticAttachment};
    /// # use kernel::dma::DataDirection;
    /// fn segments(task: &MayBlock, attachment: &StaticAttachment) -> Result<usize> {
    ///     Ok(attachment.map(task, DataDirection::FromDevice)?.table().iter().count())
    /// }
    /// ```
    pub fn map(&self, _task: &MayBlock, dir: DataDirection) -> Result<StaticMapping<'_>> {
        check_direction(dir)?;
        // SAFETY: The attachment is live (type invariant); the core takes the reservation,
        // which the caller, who may block, does not hold (lockdep reports it if it does).
        let sgt = from_err_ptr(unsafe {
            bindings::dma_buf_map_attachment_unlocked(self.attach.as_ptr(), dir.into())
        })?;
        // INVARIANT: Just mapped for this attachment; never NULL on success.
        let mapping = StaticMapping {
            attachment: self,
            sgt: NonNull::new(sgt).ok_or(ENOMEM)?,
            dir,
        };
        self.inner.mappings.add(1, Relaxed);
        Ok(mapping)
    }
}

impl Drop for StaticAttachment {
    /// Detaches, taking the reservation: drop the attachment with no reservation held.
    fn drop(&mut self) {
        // Detaching needs a sleepable context; without one the attachment is leaked whole.
        if MayBlock::new().is_err() {
            return;
        }
        // A mapping that was leaked is still mapped: detaching would let the exporter free the
        // pages its device may reach. Leak the attachment too.
        let mapped = self.inner.mappings.load(Relaxed);
        if mapped != 0 {
            pr_warn!("dma-buf attachment dropped with {mapped} mapping(s) leaked; leaking it\n");
            return;
        }
        // SAFETY: The attachment belongs to `buf` (type invariant) and is detached once, here;
        // no mapping is left (every one borrowed `self`, and each counts until unmapped).
        unsafe { bindings::dma_buf_detach(self.inner.buf.as_raw(), self.attach.as_ptr()) };
        // SAFETY: Detached: nothing refers to `inner` any more, and it is dropped once.
        unsafe { ManuallyDrop::drop(&mut self.inner) };
    }
}

/// A mapping of a [`StaticAttachment`], unmapped on drop (`dma_buf_unmap_attachment_unlocked()`,
/// which takes the reservation: drop it with none held).
///
/// # Invariants
///
/// `sgt` was returned by `dma_buf_map_attachment_unlocked()` for `attachment` in `dir`, and is
/// unmapped only on drop. Where the drop cannot sleep the mapping is leaked (the buffer stays
/// pinned).
#[must_use = "the mapping is unmapped when dropped"]
pub struct StaticMapping<'a> {
    attachment: &'a StaticAttachment,
    sgt: NonNull<bindings::sg_table>,
    dir: DataDirection,
}

impl StaticMapping<'_> {
    /// Returns the mapped entries (DMA addresses and lengths for the importer's device).
    ///
    /// ```
    /// # use dmabuf_lock::dmabuf::StaticMapping;
    /// fn bytes(mapping: &StaticMapping<'_>) -> usize {
    ///     mapping.table().iter().map(|entry| entry.dma_len() as usize).sum()
    /// }
    /// ```
    pub fn table(&self) -> &SGTable {
        // SAFETY: The table stays mapped, and unchanged, until `self` is dropped (type
        // invariant); the exporter keeps the buffer pinned meanwhile.
        unsafe { SGTable::from_raw(self.sgt.as_ptr()) }
    }
}

impl Drop for StaticMapping<'_> {
    fn drop(&mut self) {
        if MayBlock::new().is_err() {
            return;
        }
        // SAFETY: `sgt` was mapped for this attachment in `dir` and is unmapped once, here; the
        // core takes the reservation.
        unsafe {
            bindings::dma_buf_unmap_attachment_unlocked(
                self.attachment.attach.as_ptr(),
                self.sgt.as_ptr(),
                self.dir.into(),
            )
        };
        self.attachment.inner.mappings.fetch_sub(1, Relaxed);
    }
}
