// SPDX-License-Identifier: GPL-2.0

//! An importer's dynamic attachment to a dma-buf: mapped and unmapped under the buffer's
//! reservation, and unmapped by the library when the exporter moves the buffer (R10).

use super::super::{
    context::MayBlock,
    fence::ModuleRef,
    resv::{HoldsResv, ResvCell, ResvHeld},
};
use super::{check_direction, check_held, DmaBuf};
use core::{mem::ManuallyDrop, ptr::NonNull};
use kernel::{
    bindings, device::Device, dma::DataDirection, error::from_err_ptr, prelude::*,
    scatterlist::SGTable, sync::aref::ARef,
};

/// A mapping of an attachment for its device: the `sg_table` the exporter returned.
///
/// # Invariants
///
/// `sgt` was returned by `dma_buf_map_attachment()` in direction `dir` for the attachment whose
/// cell holds this value, and is not unmapped yet: only `unmap`, which consumes the value,
/// unmaps it.
pub struct Mapping {
    sgt: NonNull<bindings::sg_table>,
    dir: DataDirection,
}

// SAFETY: The table is exporter memory, tied to no task: it may be read, and unmapped, from any
// task that holds the buffer's reservation.
unsafe impl Send for Mapping {}

impl Mapping {
    /// Returns the direction the table was mapped in.
    ///
    /// ```
    /// # use dmabuf_lock::{context::MayBlock, dmabuf::{DmaBuf, DynamicAttachment}};
    /// # use kernel::{device::Device, dma::DataDirection, faux, sync::aref::ARef};
    /// fn f(task: &MayBlock, fd: i32, dev: ARef<Device>) -> Result<bool> {
    ///     let attachment = DynamicAttachment::new(task, DmaBuf::from_fd(fd)?, dev)?;
    ///     let mut guard = attachment.dmabuf().resv().lock_interruptible(task)?;
    ///     let mapping = attachment.map(&mut guard, DataDirection::ToDevice)?;
    ///     Ok(matches!(mapping.direction(), DataDirection::ToDevice))
    /// }
    /// # let task = MayBlock::new()?;
    /// # let faux = faux::Registration::new(c"dmabuf_lock_doctest", None)?;
    /// # let dev: &Device = AsRef::<faux::Device<kernel::device::Bound>>::as_ref(&faux).as_ref();
    /// // A descriptor with no file behind it (a kthread has none open):
    /// assert_eq!(f(&task, -1, dev.into()).err(), Some(EBADF));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn direction(&self) -> DataDirection {
        self.dir
    }

    /// Returns the mapped entries (DMA addresses and lengths for the importer's device).
    ///
    /// ```
    /// # use dmabuf_lock::{context::MayBlock, dmabuf::{DmaBuf, DynamicAttachment}};
    /// # use kernel::{device::Device, dma::DataDirection, faux, sync::aref::ARef};
    /// fn f(task: &MayBlock, fd: i32, dev: ARef<Device>) -> Result<usize> {
    ///     let attachment = DynamicAttachment::new(task, DmaBuf::from_fd(fd)?, dev)?;
    ///     let mut guard = attachment.dmabuf().resv().lock_interruptible(task)?;
    ///     let mapping = attachment.map(&mut guard, DataDirection::Bidirectional)?;
    ///     Ok(mapping.table().iter().map(|entry| entry.dma_len() as usize).sum())
    /// }
    /// # let task = MayBlock::new()?;
    /// # let faux = faux::Registration::new(c"dmabuf_lock_doctest", None)?;
    /// # let dev: &Device = AsRef::<faux::Device<kernel::device::Bound>>::as_ref(&faux).as_ref();
    /// // A descriptor with no file behind it (a kthread has none open):
    /// assert_eq!(f(&task, -1, dev.into()).err(), Some(EBADF));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn table(&self) -> &SGTable {
        // SAFETY: The table stays mapped, and unchanged, until `unmap` consumes this value,
        // which first takes it out of its cell with a proof of the reservation borrowed
        // mutably; `self` is borrowed from the cell through such a proof (or from the callback's
        // own, see `ResvHeld`), so that cannot happen while it lives.
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
/// `inner.mapping` as its private data (the cell is never moved out of its box), and stays
/// attached until `drop`, which releases `inner` only after `dma_buf_detach()`.
///
/// # Examples
///
/// (KUnit case `dmabuf_lock_dmabuf::dynamic_attachment_maps_under_the_reservation`.)
///
/// ```
/// # use dmabuf_lock::{context::MayBlock, dmabuf::{DmaBuf, DynamicAttachment}};
/// # use kernel::{device::Device, dma::DataDirection, faux, sync::aref::ARef};
/// fn f(task: &MayBlock, fd: i32, dev: ARef<Device>) -> Result<usize> {
///     let attachment = DynamicAttachment::new(task, DmaBuf::from_fd(fd)?, dev)?;
///     let mut guard = attachment.dmabuf().resv().lock_interruptible(task)?;
///     let segments = attachment.map(&mut guard, DataDirection::Bidirectional)?.table().iter().count();
///     // `guard` is dropped here: the mapping cannot be used past it (R10).
///     Ok(segments)
/// }
/// # let task = MayBlock::new()?;
/// # let faux = faux::Registration::new(c"dmabuf_lock_doctest", None)?;
/// # let dev: &Device = AsRef::<faux::Device<kernel::device::Bound>>::as_ref(&faux).as_ref();
/// // A descriptor with no file behind it (a kthread has none open):
/// assert_eq!(f(&task, -1, dev.into()).err(), Some(EBADF));
/// # Ok::<(), Error>(())
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
    mapping: KBox<ResvCell<Option<Mapping>>>,
    _module: ModuleRef,
}

// SAFETY: The mapping is reached only under the buffer's reservation (`ResvCell`); the raw
// attachment pointer is only passed to the dma-buf core, which may be called from any task.
unsafe impl Send for DynamicAttachment {}

// SAFETY: As above: `&self` methods reach the mapping only with a proof of the reservation.
unsafe impl Sync for DynamicAttachment {}

impl DynamicAttachment {
    /// Attaches `dev` to `buf` dynamically. `dev` must have a DMA mask (`EINVAL` otherwise:
    /// exporters map for it), and it should stay bound to its driver while mapped: like C, the
    /// attachment does not notice an unbind (the kernel crate's own DMA types require a bound
    /// device; a misc device, as the sample importer has, is never bound).
    ///
    /// ```
    /// # use dmabuf_lock::{context::MayBlock, dmabuf::{DmaBuf, DynamicAttachment}};
    /// # use kernel::{device::Device, dma::DataDirection, faux, sync::aref::ARef};
    /// fn f(task: &MayBlock, fd: i32, dev: ARef<Device>) -> Result<DynamicAttachment> {
    ///     DynamicAttachment::new(task, DmaBuf::from_fd(fd)?, dev)
    /// }
    /// # let task = MayBlock::new()?;
    /// # let faux = faux::Registration::new(c"dmabuf_lock_doctest", None)?;
    /// # let dev: &Device = AsRef::<faux::Device<kernel::device::Bound>>::as_ref(&faux).as_ref();
    /// // A descriptor with no file behind it (a kthread has none open):
    /// assert_eq!(f(&task, -1, dev.into()).err(), Some(EBADF));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn new(_task: &MayBlock, buf: ARef<DmaBuf>, dev: ARef<Device>) -> Result<Self> {
        let module = ModuleRef::this_module()?;
        let dev_raw = super::raw_device(&dev);
        // SAFETY: `dev` is a live device; `dma_mask` is a plain field of it.
        if unsafe { (*dev_raw).dma_mask }.is_null() {
            // Exporters map for the device: the DMA API warns on a device without a mask.
            return Err(EINVAL);
        }
        let mapping = KBox::new(ResvCell::new(buf.resv(), None), GFP_KERNEL)?;
        // SAFETY: `buf` and `dev` are live and stay referenced while attached (`Inner`); the
        // ops are static; the private data stays in its box, freed only after `dma_buf_detach`.
        // The callback may run as soon as the core has listed the attachment, on the exporter's
        // task with the reservation held: it uses its arguments and the private data only, and
        // the cell is empty until `map`.
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
    /// ```
    /// # use dmabuf_lock::{context::MayBlock, dmabuf::{DmaBuf, DynamicAttachment}};
    /// # use kernel::{device::Device, dma::DataDirection, faux, sync::aref::ARef};
    /// fn f(task: &MayBlock, fd: i32, dev: ARef<Device>) -> Result<bool> {
    ///     let attachment = DynamicAttachment::new(task, DmaBuf::from_fd(fd)?, dev)?;
    ///     Ok(attachment.dmabuf().resv().is_locked())
    /// }
    /// # let task = MayBlock::new()?;
    /// # let faux = faux::Registration::new(c"dmabuf_lock_doctest", None)?;
    /// # let dev: &Device = AsRef::<faux::Device<kernel::device::Bound>>::as_ref(&faux).as_ref();
    /// // A descriptor with no file behind it (a kthread has none open):
    /// assert_eq!(f(&task, -1, dev.into()).err(), Some(EBADF));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn dmabuf(&self) -> &DmaBuf {
        &self.inner.buf
    }

    /// Returns the attachment's mapping, mapping it first (`dma_buf_map_attachment()`) if the
    /// exporter invalidated it or it was never mapped; `EINVAL` if `held` proves another
    /// reservation or `dir` is `DataDirection::None`, `EBUSY` if it is mapped in another
    /// direction ([`DynamicAttachment::unmap`] first), and the exporter's error if mapping
    /// fails.
    ///
    /// ```
    /// # use dmabuf_lock::{context::MayBlock, dmabuf::{DmaBuf, DynamicAttachment}};
    /// # use kernel::{device::Device, dma::DataDirection, faux, sync::aref::ARef};
    /// fn f(task: &MayBlock, fd: i32, dev: ARef<Device>) -> Result<usize> {
    ///     let attachment = DynamicAttachment::new(task, DmaBuf::from_fd(fd)?, dev)?;
    ///     let mut guard = attachment.dmabuf().resv().lock_interruptible(task)?;
    ///     let mapping = attachment.map(&mut guard, DataDirection::Bidirectional)?;
    ///     Ok(mapping.table().iter().count())
    /// }
    /// # let task = MayBlock::new()?;
    /// # let faux = faux::Registration::new(c"dmabuf_lock_doctest", None)?;
    /// # let dev: &Device = AsRef::<faux::Device<kernel::device::Bound>>::as_ref(&faux).as_ref();
    /// // A descriptor with no file behind it (a kthread has none open):
    /// assert_eq!(f(&task, -1, dev.into()).err(), Some(EBADF));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn map<'a>(
        &'a self,
        held: &'a mut impl HoldsResv,
        dir: DataDirection,
    ) -> Result<&'a Mapping> {
        check_held(&self.inner.buf, held)?;
        check_direction(dir)?;
        let cell = &self.inner.mapping;
        // No borrow of the cell may be alive while the core runs the exporter's callback: it
        // may move the buffer and run this attachment's `invalidate_mappings`.
        let mapped_dir = cell.get(held)?.as_ref().map(Mapping::direction);
        if let Some(mapped_dir) = mapped_dir {
            // A table mapped for another direction would let the device read stale bounce
            // buffers (or write where it may only read): unmap it first.
            if mapped_dir != dir {
                return Err(EBUSY);
            }
        } else {
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
    /// ```
    /// # use dmabuf_lock::{context::MayBlock, dmabuf::{DmaBuf, DynamicAttachment}};
    /// # use kernel::{device::Device, dma::DataDirection, faux, sync::aref::ARef};
    /// fn f(task: &MayBlock, fd: i32, dev: ARef<Device>) -> Result<bool> {
    ///     let attachment = DynamicAttachment::new(task, DmaBuf::from_fd(fd)?, dev)?;
    ///     let mut guard = attachment.dmabuf().resv().lock_interruptible(task)?;
    ///     attachment.map(&mut guard, DataDirection::Bidirectional)?;
    ///     attachment.unmap(&mut guard)
    /// }
    /// # let task = MayBlock::new()?;
    /// # let faux = faux::Registration::new(c"dmabuf_lock_doctest", None)?;
    /// # let dev: &Device = AsRef::<faux::Device<kernel::device::Bound>>::as_ref(&faux).as_ref();
    /// // A descriptor with no file behind it (a kthread has none open):
    /// assert_eq!(f(&task, -1, dev.into()).err(), Some(EBADF));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn unmap(&self, held: &mut impl HoldsResv) -> Result<bool> {
        check_held(&self.inner.buf, held)?;
        let Some(mapping) = self.inner.mapping.get_mut(held)?.take() else {
            return Ok(false);
        };
        // SAFETY: `held` proves the buffer's reservation (checked above); `mapping` came out of
        // this attachment's cell.
        unsafe { unmap(self.attach.as_ptr(), mapping) };
        Ok(true)
    }
}

/// Unmaps `mapping` of `attach`.
///
/// # Safety
///
/// `attach` is a live attachment made by [`DynamicAttachment::new`], `mapping` came out of its
/// cell, and the current task holds the buffer's reservation.
unsafe fn unmap(attach: *mut bindings::dma_buf_attachment, mapping: Mapping) {
    // SAFETY: `mapping` was made for `attach` in `mapping.dir` and is unmapped once, here
    // (type invariant of `Mapping`, which this consumes); the reservation is held, as the call
    // requires for a dynamic attachment (the caller's contract).
    unsafe { bindings::dma_buf_unmap_attachment(attach, mapping.sgt.as_ptr(), mapping.dir.into()) };
}

impl Drop for DynamicAttachment {
    /// Unmaps under the reservation, which it takes, then detaches: drop the attachment with no
    /// reservation held (holding this buffer's would deadlock, and lockdep says so).
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
                // SAFETY: The attachment is live, `mapping` came out of its cell, and `guard`
                // holds the buffer's reservation.
                unsafe { unmap(attach, mapping) };
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
    // SAFETY: The core holds `buf`'s reservation for the current task while this runs, either
    // inside a library call that borrowed this task's proof of it mutably or under a lock that C
    // code took itself (what `ResvHeld` relies on).
    let mut held = unsafe { ResvHeld::new(buf.resv()) };
    if let Ok(Some(mapping)) = cell.get_mut(&mut held).map(Option::take) {
        // SAFETY: The attachment is live, `mapping` came out of its cell, and the core holds
        // the reservation for this task.
        unsafe { unmap(attach, mapping) };
    }
}

static ATTACH_OPS: bindings::dma_buf_attach_ops = bindings::dma_buf_attach_ops {
    allow_peer2peer: false,
    invalidate_mappings: Some(invalidate_mappings),
};
