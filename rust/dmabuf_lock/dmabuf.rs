// SPDX-License-Identifier: GPL-2.0

//! dma-bufs: a refcounted handle ([`DmaBuf`]) and an importer's dynamic attachment
//! ([`DynamicAttachment`]).
//!
//! A dma-buf is the file a buffer is shared through. Its reservation is where every user
//! synchronises: importers map and unmap their attachments under it, and the exporter calls
//! their `invalidate_mappings` with it held (R10). Here, mapping needs a proof that the
//! reservation is held, the mapping lives in a [`ResvCell`] guarded by it, and the library's
//! `invalidate_mappings` callback gets the [`ResvHeld`] proof, so none of these steps can be
//! taken without the lock and none takes it again.
//!
//! Rules: R10 (map, unmap and invalidate under the reservation), R1 (nothing here touches user
//! memory under a reservation; an exporter's fault handler takes the reservation inside
//! `mmap_lock`), R3 (that handler waits for the buffer's moves), R4 (attaching and detaching
//! need a [`MayBlock`]).
//!
//! [`ResvCell`]: super::resv::ResvCell
//! [`ResvHeld`]: super::resv::ResvHeld
//! [`MayBlock`]: super::context::MayBlock

mod attachment;
mod exporter;
mod static_attachment;
mod user_mapping;

pub use attachment::{DynamicAttachment, Mapping};
pub use exporter::{
    page_is_zero, ExportList, ExportOps, ExportedAttachment, ExportedBuf, Exporter, Listed,
    PageMapping, PageVmap, SharedPages,
};
pub use static_attachment::{StaticAttachment, StaticMapping};
pub use user_mapping::UserMapping;

use super::{
    context::MayBlock,
    resv::{HoldsResv, HoldsResvPrivate, Resv},
};
use core::ptr::NonNull;
use kernel::{
    bindings,
    device::Device,
    dma::DataDirection,
    error::{code::EINVAL, from_err_ptr, to_result},
    prelude::*,
    sync::aref::{ARef, AlwaysRefCounted},
    types::Opaque,
};

// The dma-buf core exports its functions in the `DMA_BUF` symbol namespace: the module the
// library is compiled into imports it, as `imports_ns: ["DMA_BUF"]` in `module!` would
// (not when rustdoc renders the docs or collects the examples, without the kernel's features).
#[cfg(all(MODULE, not(any(doc, doctest))))]
#[link_section = ".modinfo"]
#[used(compiler)]
static IMPORT_NS_DMA_BUF: [u8; 18] = *b"import_ns=DMA_BUF\0";

/// A dma-buf, used through [`ARef<DmaBuf>`] (one reference on its file) or borrowed.
///
/// # Invariants
///
/// The wrapped `dma_buf` is live: a reference on its file is held for as long as the
/// `&DmaBuf` or `ARef<DmaBuf>` exists. Its reservation (`resv`), `ops`, `size` and `file` are
/// set at export and never change.
///
/// # Examples
///
/// (KUnit case `dmabuf_lock_dmabuf::handle_from_fd`.)
///
/// ```
/// # use dmabuf_lock::{context::MayBlock, dmabuf::DmaBuf, resv::FenceUsage};
/// # use kernel::sync::aref::ARef;
/// fn f(task: &MayBlock, fd: i32) -> Result<bool> {
///     let buf: ARef<DmaBuf> = DmaBuf::from_fd(fd)?;
///     let _guard = buf.resv().lock_interruptible(task)?;
///     Ok(buf.resv().test_signaled(FenceUsage::Write))
/// }
/// # let task = MayBlock::new()?;
/// // A descriptor with no file behind it (a kthread has none open):
/// assert_eq!(f(&task, -1).err(), Some(EBADF));
/// # Ok::<(), Error>(())
/// ```
#[repr(transparent)]
pub struct DmaBuf(Opaque<bindings::dma_buf>);

// SAFETY: A dma-buf is shared between tasks by design: its state is protected by its
// reservation and its own locks, and every method here takes `&self`.
unsafe impl Send for DmaBuf {}

// SAFETY: As above.
unsafe impl Sync for DmaBuf {}

// SAFETY: The dma-buf lives while its file is referenced: `get_dma_buf()` takes a file
// reference, `dma_buf_put()` drops one, and the last drop releases the buffer.
unsafe impl AlwaysRefCounted for DmaBuf {
    fn inc_ref(&self) {
        // SAFETY: The dma-buf is live (type invariant), so its file is; `get_dma_buf()` is
        // `get_file(dmabuf->file)`.
        unsafe { bindings::get_file((*self.as_raw()).file) };
    }

    unsafe fn dec_ref(obj: NonNull<Self>) {
        // SAFETY: The caller gives up one reference.
        unsafe { bindings::dma_buf_put(obj.as_ptr().cast()) };
    }
}

impl DmaBuf {
    /// Takes a reference on the dma-buf behind file descriptor `fd` of the current task
    /// (`dma_buf_get()`): `EBADF` if there is none, `EINVAL` if the file is not a dma-buf.
    ///
    /// ```
    /// # use dmabuf_lock::{context::MayBlock, dmabuf::DmaBuf, resv::FenceUsage};
    /// # use kernel::sync::aref::ARef;
    /// fn f(_task: &MayBlock, fd: i32) -> Result<ARef<DmaBuf>> {
    ///     DmaBuf::from_fd(fd)
    /// }
    /// # let task = MayBlock::new()?;
    /// // A descriptor with no file behind it (a kthread has none open):
    /// assert_eq!(f(&task, -1).err(), Some(EBADF));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn from_fd(fd: i32) -> Result<ARef<DmaBuf>> {
        // SAFETY: `dma_buf_get` accepts any integer and returns a dma-buf with a reference for
        // the caller, or an error pointer.
        let raw = from_err_ptr(unsafe { bindings::dma_buf_get(fd) })?;
        // SAFETY: `raw` is a live dma-buf whose reference the `ARef` takes over; `DmaBuf` is
        // `repr(transparent)` over the `dma_buf`.
        Ok(unsafe { ARef::from_raw(NonNull::new_unchecked(raw.cast())) })
    }

    /// Borrows the dma-buf at `ptr`.
    ///
    /// # Safety
    ///
    /// `ptr` is a live dma-buf, referenced for `'a`.
    pub unsafe fn from_raw<'a>(ptr: *mut bindings::dma_buf) -> &'a DmaBuf {
        // SAFETY: `DmaBuf` is `repr(transparent)` over `dma_buf`; the caller vouches for `'a`.
        unsafe { &*ptr.cast() }
    }

    /// Returns the raw `struct dma_buf` pointer.
    pub fn as_raw(&self) -> *mut bindings::dma_buf {
        self.0.get()
    }

    /// Returns the buffer's reservation, which every user locks and fences (R10).
    ///
    /// ```
    /// # use dmabuf_lock::{context::MayBlock, dmabuf::DmaBuf, resv::FenceUsage};
    /// # use kernel::sync::aref::ARef;
    /// fn f(task: &MayBlock, fd: i32) -> Result<bool> {
    ///     DmaBuf::from_fd(fd)?.resv().wait(task, FenceUsage::Write, true, 100)
    /// }
    /// # let task = MayBlock::new()?;
    /// // A descriptor with no file behind it (a kthread has none open):
    /// assert_eq!(f(&task, -1).err(), Some(EBADF));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn resv(&self) -> &Resv {
        // SAFETY: A dma-buf's reservation is initialised at export and finalised at release,
        // after the last reference, which `self` holds (type invariant).
        unsafe { Resv::from_raw((*self.as_raw()).resv) }
    }

    /// Returns the buffer's size in bytes.
    ///
    /// ```
    /// # use dmabuf_lock::{context::MayBlock, dmabuf::DmaBuf, resv::FenceUsage};
    /// # use kernel::sync::aref::ARef;
    /// fn f(_task: &MayBlock, fd: i32) -> Result<usize> {
    ///     Ok(DmaBuf::from_fd(fd)?.size() / kernel::page::PAGE_SIZE)
    /// }
    /// # let task = MayBlock::new()?;
    /// // A descriptor with no file behind it (a kthread has none open):
    /// assert_eq!(f(&task, -1).err(), Some(EBADF));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn size(&self) -> usize {
        // SAFETY: `size` is set at export and never changes (type invariant).
        unsafe { (*self.as_raw()).size }
    }

    /// Returns whether this dma-buf was exported with `ops`: how an exporter recognises its
    /// own buffers among the fds it is given.
    ///
    /// ```
    /// # use dmabuf_lock::{context::MayBlock, dmabuf::DmaBuf, resv::FenceUsage};
    /// # use kernel::sync::aref::ARef;
    /// // The exporter's own ops (a real exporter fills them in).
    /// static MY_OPS: kernel::bindings::dma_buf_ops = kernel::bindings::dma_buf_ops {
    /// #     attach: None,
    /// #     detach: None,
    /// #     pin: None,
    /// #     unpin: None,
    /// #     map_dma_buf: None,
    /// #     unmap_dma_buf: None,
    /// #     release: None,
    /// #     begin_cpu_access: None,
    /// #     end_cpu_access: None,
    /// #     mmap: None,
    /// #     vmap: None,
    /// #     vunmap: None,
    /// };
    /// fn f(_task: &MayBlock, fd: i32) -> Result<ARef<DmaBuf>> {
    ///     let buf = DmaBuf::from_fd(fd)?;
    ///     if !buf.is_exported_with(&MY_OPS) {
    ///         return Err(EINVAL);
    ///     }
    ///     Ok(buf)
    /// }
    /// # let task = MayBlock::new()?;
    /// // A descriptor with no file behind it (a kthread has none open):
    /// assert_eq!(f(&task, -1).err(), Some(EBADF));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn is_exported_with(&self, ops: &'static bindings::dma_buf_ops) -> bool {
        // SAFETY: `ops` is set at export and never changes (type invariant).
        core::ptr::eq(unsafe { (*self.as_raw()).ops }, ops)
    }

    /// Returns the dma-buf's `struct file`, for C calls that take one (`vm_mmap()`): a raw
    /// pointer, valid while `self` is. (A `&kernel::fs::File` would promise more than a
    /// dma-buf's file can: `File::from_raw_file` wants every `fdget_pos` on it to take
    /// `f_pos_lock`, which an anonymous-inode file without `FMODE_ATOMIC_POS` does not.)
    ///
    /// ```
    /// # use dmabuf_lock::{context::MayBlock, dmabuf::DmaBuf};
    /// fn f(_task: &MayBlock, fd: i32) -> Result<bool> {
    ///     Ok(!DmaBuf::from_fd(fd)?.file_ptr().is_null())
    /// }
    /// # let task = MayBlock::new()?;
    /// // A descriptor with no file behind it (a kthread has none open):
    /// assert_eq!(f(&task, -1).err(), Some(EBADF));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn file_ptr(&self) -> *mut bindings::file {
        // SAFETY: `file` is set at export and never changes (type invariant).
        unsafe { (*self.as_raw()).file }
    }

    /// Tells every dynamic importer that the buffer moves (`dma_buf_invalidate_mappings()`):
    /// an exporter calls it with the reservation held (R10), and `held` must prove it; `EINVAL`
    /// for a proof of another reservation. The proof is borrowed mutably because importers'
    /// callbacks run now, on this task, with a proof of their own.
    ///
    /// ```
    /// # use dmabuf_lock::{context::MayBlock, dmabuf::DmaBuf, resv::FenceUsage};
    /// # use kernel::sync::aref::ARef;
    /// fn f(task: &MayBlock, fd: i32) -> Result {
    ///     let buf = DmaBuf::from_fd(fd)?;
    ///     let mut guard = buf.resv().lock_interruptible(task)?;
    ///     buf.invalidate_mappings(&mut guard)
    /// }
    /// # let task = MayBlock::new()?;
    /// // A descriptor with no file behind it (a kthread has none open):
    /// assert_eq!(f(&task, -1).err(), Some(EBADF));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn invalidate_mappings(&self, held: &mut impl HoldsResv) -> Result {
        check_held(self, held)?;
        // SAFETY: The dma-buf is live and its reservation is held by the current task (the
        // proof), as the call requires.
        unsafe { bindings::dma_buf_invalidate_mappings(self.as_raw()) };
        Ok(())
    }

    /// Unmaps the buffer from every process that has it mapped (`unmap_mapping_range()` on the
    /// dma-buf file's mapping), so that the next CPU access faults: how an exporter with
    /// [`Exporter::fault`] that moves the buffer makes its mappings follow, as TTM does. Called
    /// with the reservation held, which `held` must prove (`EINVAL` for a proof of another
    /// reservation): the library's fault handler inserts pages under the same reservation, so a
    /// fault comes either before the move or after this call. The kernel orders
    /// `i_mmap_rwsem`, which the unmap takes, inside reservations (its `dma_resv_lockdep()`).
    ///
    /// Pages of an exporter whose `mmap` maps them itself are unmapped too, but never come
    /// back; and a page that a process has pinned (`get_user_pages()`) stays pinned: the
    /// page's own reference keeps it allocated.
    ///
    /// # Context
    ///
    /// May sleep (it takes `i_mmap_rwsem` for reading and flushes TLBs), as holding the
    /// reservation allows: call it where the reservation was locked, not inside a spinlock or
    /// an atomic section taken since (`might_sleep()` reports that). Reclaim may call it: the
    /// shrinker's scan does.
    ///
    /// ```
    /// # use dmabuf_lock::{context::MayBlock, dmabuf::DmaBuf};
    /// fn moved(task: &MayBlock, buf: &DmaBuf) -> Result {
    ///     let mut guard = buf.resv().lock_interruptible(task)?;
    ///     // ... move the pages, with the move's fence as a kernel-usage fence ...
    ///     buf.zap_user_mappings(&mut guard)?;
    ///     buf.invalidate_mappings(&mut guard)
    /// }
    /// ```
    pub fn zap_user_mappings(&self, held: &mut impl HoldsResv) -> Result {
        check_held(self, held)?;
        // SAFETY: The dma-buf's file is live (type invariant) and its `f_mapping` is set when
        // the file is made and never changes; unmapping the whole range of every vma that maps
        // it (copy-on-write copies included) needs no other lock than those the call takes.
        unsafe { bindings::unmap_mapping_range((*self.file_ptr()).f_mapping, 0, 0, 1) };
        Ok(())
    }

    /// Prepares the buffer for CPU access in direction `dir` and returns a guard that ends it
    /// (`dma_buf_begin_cpu_access()` / `dma_buf_end_cpu_access()`). It may wait for fences and
    /// take the reservation, so it needs a [`MayBlock`] and no reservation may be held.
    /// `DataDirection::None` is `EINVAL` (the DMA API's `BUG_ON` in exporters that sync).
    ///
    /// ```
    /// # use dmabuf_lock::{context::MayBlock, dmabuf::DmaBuf, resv::FenceUsage};
    /// # use kernel::sync::aref::ARef;
    /// fn f(task: &MayBlock, fd: i32) -> Result {
    ///     let buf = DmaBuf::from_fd(fd)?;
    ///     let _access = buf.begin_cpu_access(task, kernel::dma::DataDirection::FromDevice)?;
    ///     Ok(())
    /// }
    /// # let task = MayBlock::new()?;
    /// // A descriptor with no file behind it (a kthread has none open):
    /// assert_eq!(f(&task, -1).err(), Some(EBADF));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn begin_cpu_access(&self, _task: &MayBlock, dir: DataDirection) -> Result<CpuAccess<'_>> {
        check_direction(dir)?;
        // SAFETY: The dma-buf is live (type invariant); `dir` is a valid DMA direction.
        to_result(unsafe { bindings::dma_buf_begin_cpu_access(self.as_raw(), dir.into()) })?;
        Ok(CpuAccess { buf: self, dir })
    }
}

/// CPU access to a dma-buf, ended on drop; see [`DmaBuf::begin_cpu_access`].
#[must_use = "CPU access ends when the guard is dropped"]
pub struct CpuAccess<'a> {
    buf: &'a DmaBuf,
    dir: DataDirection,
}

impl Drop for CpuAccess<'_> {
    fn drop(&mut self) {
        // SAFETY: `begin_cpu_access` succeeded for this direction; the buffer is live.
        // The exporter's result is not actionable here: the access is over either way.
        let _ = unsafe { bindings::dma_buf_end_cpu_access(self.buf.as_raw(), self.dir.into()) };
    }
}

/// `EINVAL` for `DataDirection::None`, which the DMA API's map and sync functions `BUG_ON`.
fn check_direction(dir: DataDirection) -> Result {
    if matches!(dir, DataDirection::None) {
        Err(EINVAL)
    } else {
        Ok(())
    }
}

/// The `struct device` behind a [`Device`].
fn raw_device(dev: &Device) -> *mut bindings::device {
    // `Device` is `repr(transparent)` over `Opaque<bindings::device>`.
    core::ptr::from_ref(dev).cast_mut().cast()
}

/// `EINVAL` unless `held` proves the reservation of `buf`.
fn check_held(buf: &DmaBuf, held: &impl HoldsResv) -> Result {
    if core::ptr::eq(HoldsResvPrivate::held_resv(held), buf.resv()) {
        Ok(())
    } else {
        Err(EINVAL)
    }
}
