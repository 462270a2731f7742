// SPDX-License-Identifier: GPL-2.0

//! The exporter side of a dma-buf: a driver's buffer type implements [`Exporter`], the library
//! generates its `dma_buf_ops` ([`ExportOps`]), and [`ExportedBuf::new`] exports a value of it.
//!
//! The callbacks that the dma-buf core calls with the buffer's reservation held (pin and unpin,
//! map and unmap, vmap and vunmap) get a [`ResvHeld`]: the proof that reaches the buffer's
//! [`ResvCell`]s, and none of their arguments reaches the reservation itself, so locking it
//! again in one does not compile (R10; `compile-fail/exporter_callback_relocks.rs`). The others
//! (attach and detach, mmap, CPU access) run without it and get no proof, so a guarded cell
//! cannot be touched there (`compile-fail/exporter_cell_without_resv.rs`). A CPU page fault on a
//! mapped buffer ([`Exporter::fault`]) gets the proof too: the library's fault handler locks the
//! reservation under the process's `mmap_lock` (R1's allowed direction) before asking the driver
//! for the page.
//!
//! [`ResvCell`]: super::super::resv::ResvCell

mod fault;
mod list;
mod ops;
mod pages;

pub use list::{ExportList, Listed};
pub use ops::ExportOps;
pub use pages::{page_is_zero, PageMapping, PageVmap, SharedPages};

use super::super::{
    context::MayBlock,
    fence::live_module,
    resv::{OwnedResv, Resv, ResvCell, ResvHeld},
};
use super::DmaBuf;
use core::{any::TypeId, marker::PhantomData, ptr::NonNull};
use kernel::{
    bindings,
    device::Device,
    dma::DataDirection,
    error::{code::EINVAL, from_err_ptr, VTABLE_DEFAULT_ERROR},
    fs::file::FileDescriptorReservation,
    mm::virt::VmaNew,
    page::{Page, PAGE_SIZE},
    prelude::*,
    sync::{aref::ARef, atomic::Atomic},
    types::Opaque,
};
use list::ListLink;

/// A driver's buffer type, exported as dma-bufs: its callbacks are the buffer's `dma_buf_ops`.
///
/// The value is owned by the dma-buf: [`ExportedBuf::new`] moves it in, and the dma-buf's
/// `release` drops it after the last reference to the buffer is gone (its `Drop` is the
/// release callback). `map` is required (the core refuses an exporter without it); the others
/// are optional and left NULL when not implemented, except that implementing `pin` also installs
/// `unpin` (the core wants both or neither), and `unmap` and `vunmap` are always installed with
/// `map` and `vmap`, to give the mapping back.
///
/// The library's ops are in [`Exporter::OPS`], which **must name a `static`** of the driver's:
/// a static has one address, and the ops pointer is how a buffer is recognised as this
/// exporter's. `&ExportOps::new()` written in the constant compiles, but a promoted constant may
/// have another address wherever it is used, and [`ExportedBuf::from_dmabuf`] would then refuse
/// the driver's own buffers (`EINVAL`; never unsound, since the type is checked too).
///
/// Implementing `unpin` without `pin`, or `vunmap` without `vmap`, does not compile: the core
/// calls them only after their pair. Nor do `mmap` and `fault` together: with `fault` the
/// library's `mmap` sets the mapping up for it (`compile-fail/exporter_mmap_and_fault.rs`).
///
/// Callbacks run on the task of whoever calls into the core (an importer's, the exporter's
/// own); a Rust panic in one is a `BUG()` there, as in C, with the reservation still held when
/// it was. Every exported buffer holds a reference on the module, so the callbacks' code stays
/// loaded while a buffer lives (`rmmod` is refused).
///
/// # Examples
///
/// (KUnit suite `dmabuf_lock_exporter` exports, attaches and maps buffers of this kind.)
///
/// ```
/// use dmabuf_lock::{
///     context::MayBlock,
///     dmabuf::{ExportOps, ExportedAttachment, ExportedBuf, Exporter, PageMapping},
///     resv::{ResvCell, ResvHeld},
/// };
/// use kernel::{dma::DataDirection, page::Page};
///
/// struct Pages {
///     pages: KVec<Page>,
///     /// Mappings handed out, under the buffer's reservation (R10).
///     mapped: ResvCell<u32>,
/// }
///
/// static PAGES_OPS: ExportOps<Pages> = ExportOps::new();
///
/// #[vtable]
/// impl Exporter for Pages {
///     const OPS: &'static ExportOps<Self> = &PAGES_OPS;
///
///     fn map<'a>(
///         &'a self,
///         held: &mut ResvHeld<'_>,
///         attachment: &ExportedAttachment,
///         dir: DataDirection,
///     ) -> Result<PageMapping<'a>> {
///         let mapping = PageMapping::new(attachment.device(), &self.pages, dir)?;
///         *self.mapped.get_mut(held)? += 1;
///         Ok(mapping)
///     }
/// }
///
/// let task = MayBlock::new()?;
/// let mut pages = KVec::new();
/// pages.push(Page::alloc_page(GFP_KERNEL | __GFP_ZERO)?, GFP_KERNEL)?;
/// let buf = ExportedBuf::new(&task, kernel::page::PAGE_SIZE, |resv| {
///     Ok(Pages { pages, mapped: ResvCell::new(resv, 0) })
/// })?;
/// assert_eq!(buf.dmabuf().size(), kernel::page::PAGE_SIZE);
/// # Ok::<(), Error>(())
/// ```
#[vtable]
pub trait Exporter: Sized + Send + Sync + 'static {
    /// The buffer type's ops: `&OPS_STATIC`, where `static OPS_STATIC: ExportOps<Self> =
    /// ExportOps::new();`. Never `&ExportOps::new()` here: see [`Exporter`].
    const OPS: &'static ExportOps<Self>;

    /// An importer attaches `attachment` (`dma_buf_attach()`); an error refuses it. The
    /// reservation is not held.
    fn attach(&self, _attachment: &ExportedAttachment) -> Result {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// `attachment` is detached. The reservation is not held.
    fn detach(&self, _attachment: &ExportedAttachment) {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// The buffer must stay where it is for `attachment` until [`Exporter::unpin`]: called
    /// with the reservation held (R10), for a dynamic importer's `dma_buf_pin()` and around
    /// every mapping of a static one. Implementing it makes the buffer dynamic
    /// (`dma_buf_is_dynamic()`): a static importer's mappings are then pinned instead of the
    /// exporter being expected to keep them in place, and the exporter may move the buffer under
    /// dynamic importers ([`DmaBuf::invalidate_mappings`]). The core maps and unmaps with the
    /// reservation held either way.
    fn pin(&self, _held: &mut ResvHeld<'_>, _attachment: &ExportedAttachment) -> Result {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Undoes one [`Exporter::pin`]; the reservation is held (R10).
    fn unpin(&self, _held: &mut ResvHeld<'_>, _attachment: &ExportedAttachment) {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Maps the buffer for `attachment`'s device in direction `dir` (never
    /// `DataDirection::None`); the reservation is held (R10). The mapping borrows `self`: the
    /// core gives it back to [`Exporter::unmap`] before the buffer can be released.
    fn map<'a>(
        &'a self,
        held: &mut ResvHeld<'_>,
        attachment: &ExportedAttachment,
        dir: DataDirection,
    ) -> Result<PageMapping<'a>>;

    /// Takes back a mapping made by [`Exporter::map`] for `attachment`; the reservation is held
    /// (R10). A mapping `map` returned comes back here at most once: when the importer unmaps
    /// it, or at once if the library refused it (not covering the buffer, or made for another
    /// device or direction than `attachment`'s and the one asked: do not assume they match).
    /// It does not come back if a C importer detaches with it still mapped (the library then
    /// leaks the buffer, see `release`). Without `unmap`, the mapping is dropped (unmapped and
    /// freed).
    fn unmap<'a>(
        &'a self,
        _held: &mut ResvHeld<'_>,
        _attachment: &ExportedAttachment,
        _mapping: PageMapping<'a>,
    ) {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Maps the buffer, from page `pgoff` on, into a process (`mmap()` of the dma-buf's fd, or
    /// `dma_buf_mmap()`). The core has checked that the range lies inside the buffer. The caller
    /// holds the process's `mmap_lock`, and the library locks the reservation for the call
    /// (interruptibly: after a signal's handler the `mmap()` starts again, `ERESTARTSYS`), so that an exporter whose
    /// pages may be replaced under the reservation (an eviction, R2) maps the current ones;
    /// `held` proves it (R10). Pages inserted here stay mapped until the exporter zaps them
    /// ([`Listed::zap_user_mappings`]) before replacing them; the vma becomes visible to such a
    /// zap only after this returns, so an exporter that replaces pages should implement
    /// [`Exporter::fault`] instead, which inserts each page under the reservation when it is
    /// touched. An exporter implements this or [`Exporter::fault`], not both (a compile error).
    fn mmap(&self, _held: &mut ResvHeld<'_>, _vma: &VmaNew, _pgoff: usize) -> Result {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Returns the page at `pgoff` (in pages from the buffer's start, below its size) for a CPU
    /// page fault on a mapping of the buffer, with the reservation held (R10). With it, the
    /// library implements `mmap`: the mapping starts empty, and each page is inserted when it
    /// is first touched.
    ///
    /// The library's fault handler runs under the faulting process's `mmap_lock` and locks the
    /// reservation inside it, the direction R1 allows (TTM's): so this must not touch user
    /// memory (no user copies: R1), and it may allocate (R2). Before calling it, the handler
    /// waits for the buffer's kernel-usage fences (the exporter's moves, R3); where the fault
    /// may be retried it waits for those and for a contended reservation without the
    /// `mmap_lock`, and a signal ends the wait (the access faults again after it). Private
    /// writable (copy-on-write) mappings are `EINVAL`; the mapping cannot grow (`mremap()`).
    ///
    /// The page is borrowed from `self`, for as long as the proof: it is in the page table
    /// before the reservation is unlocked, and the page table holds a reference on it of its
    /// own, so it stays allocated while mapped even if the driver frees it. An exporter that
    /// moves the buffer zaps its user mappings with the reservation held
    /// ([`DmaBuf::zap_user_mappings`]), so that the next access faults here and gets the new
    /// page. An error is `SIGBUS` for the faulting access (`ENOMEM`: the out-of-memory handler).
    /// A panic here is a `BUG()` with the reservation and the `mmap_lock` held.
    ///
    /// (KUnit case `dmabuf_lock_exporter::fault_waits_for_kernel_fences` maps such a buffer and
    /// faults on it; `samples/dmabuf_exporter.rs` implements it.)
    ///
    /// ```
    /// # use dmabuf_lock::{
    /// #     context::MayBlock,
    /// #     dmabuf::{ExportOps, ExportedAttachment, ExportedBuf, Exporter, PageMapping},
    /// #     resv::ResvHeld,
    /// # };
    /// # use kernel::{dma::DataDirection, page::{Page, PAGE_SIZE}};
    /// struct Lazy {
    ///     pages: KVec<Page>,
    /// }
    /// static LAZY_OPS: ExportOps<Lazy> = ExportOps::new();
    /// #[vtable]
    /// impl Exporter for Lazy {
    ///     const OPS: &'static ExportOps<Self> = &LAZY_OPS;
    /// #   fn map<'a>(
    /// #       &'a self,
    /// #       _held: &mut ResvHeld<'_>,
    /// #       attachment: &ExportedAttachment,
    /// #       dir: DataDirection,
    /// #   ) -> Result<PageMapping<'a>> {
    /// #       PageMapping::new(attachment.device(), &self.pages, dir)
    /// #   }
    ///     fn fault<'a>(&'a self, _held: &'a mut ResvHeld<'_>, pgoff: usize) -> Result<&'a Page> {
    ///         self.pages.get(pgoff).ok_or(EINVAL)
    ///     }
    /// }
    /// let task = MayBlock::new()?;
    /// let mut pages = KVec::new();
    /// pages.push(Page::alloc_page(GFP_KERNEL | __GFP_ZERO)?, GFP_KERNEL)?;
    /// let buf = ExportedBuf::new(&task, PAGE_SIZE, |_| Ok(Lazy { pages }))?;
    /// // The library's `mmap` and fault handler serve the buffer's mappings.
    /// assert!(buf.dmabuf().is_exported_with(Lazy::OPS.as_raw()));
    /// assert!(LAZY_OPS.as_raw().mmap.is_some());
    /// # Ok::<(), Error>(())
    /// ```
    fn fault<'a>(&'a self, _held: &'a mut ResvHeld<'_>, _pgoff: usize) -> Result<&'a Page> {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Maps the whole buffer into the kernel (`dma_buf_vmap()`); the reservation is held (R10).
    /// The core counts users and calls this for the first one only.
    fn vmap<'a>(&'a self, _held: &mut ResvHeld<'_>) -> Result<PageVmap<'a>> {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Takes back the mapping of [`Exporter::vmap`] when its last user is gone; the reservation
    /// is held (R10). Without it, the mapping is dropped (unmapped).
    fn vunmap<'a>(&'a self, _held: &mut ResvHeld<'_>, _vmap: PageVmap<'a>) {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Prepares the buffer for CPU access in direction `dir` (flushes caches, waits for the
    /// device). The reservation is not held, and no argument reaches it, so guarded cells
    /// cannot be used here (R10 enforces only that: a value that reaches its buffer some other
    /// way could lock it, which lockdep reports if it deadlocks).
    fn begin_cpu_access(&self, _dir: DataDirection) -> Result {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Ends CPU access in direction `dir`. The reservation is not held.
    fn end_cpu_access(&self, _dir: DataDirection) -> Result {
        build_error!(VTABLE_DEFAULT_ERROR)
    }
}

/// An attachment of an importer's device to one of this exporter's buffers, as the exporter's
/// callbacks see it. It does not lead to the dma-buf, so a callback that runs with the
/// reservation held cannot reach the reservation through it to lock it again (R10).
///
/// # Invariants
///
/// The wrapped attachment is live, and its `dev` and `importer_ops` do not change, while the
/// `&ExportedAttachment` exists.
///
/// ```
/// use dmabuf_lock::dmabuf::ExportedAttachment;
/// fn describe(attachment: &ExportedAttachment) -> (bool, &kernel::device::Device) {
///     (attachment.is_dynamic(), attachment.device())
/// }
/// ```
#[repr(transparent)]
pub struct ExportedAttachment(Opaque<bindings::dma_buf_attachment>);

impl ExportedAttachment {
    /// Borrows the attachment at `ptr`.
    ///
    /// # Safety
    ///
    /// `ptr` is a live attachment for `'a`.
    unsafe fn from_raw<'a>(ptr: *mut bindings::dma_buf_attachment) -> &'a Self {
        // SAFETY: `repr(transparent)` over the attachment; the caller vouches for `'a`.
        unsafe { &*ptr.cast() }
    }

    /// Returns the importer's device, which the buffer is mapped for.
    ///
    /// ```
    /// # use dmabuf_lock::dmabuf::ExportedAttachment;
    /// fn device(attachment: &ExportedAttachment) -> &kernel::device::Device {
    ///     attachment.device()
    /// }
    /// ```
    pub fn device(&self) -> &Device {
        // SAFETY: The attachment is live and refers to its device, which its importer keeps
        // alive while attached (C's contract; `dma_buf_dynamic_attach()` refuses NULL).
        unsafe { Device::from_raw((*self.0.get()).dev) }
    }

    /// Returns whether the importer is dynamic (it has `invalidate_mappings`, so its mapping may
    /// be invalidated instead of the buffer being pinned).
    ///
    /// ```
    /// # use dmabuf_lock::dmabuf::ExportedAttachment;
    /// fn may_move_under(attachment: &ExportedAttachment) -> bool {
    ///     attachment.is_dynamic()
    /// }
    /// ```
    pub fn is_dynamic(&self) -> bool {
        // SAFETY: `importer_ops` is set at attach and never changes (type invariant).
        !unsafe { (*self.0.get()).importer_ops }.is_null()
    }
}

/// The dma-buf's private data: the driver's value and the reservation it is guarded by.
///
/// `repr(C)` with `type_id` first, so that the type can be checked before the rest is read.
#[repr(C)]
#[pin_data]
struct Exported<T> {
    type_id: TypeId,
    /// Dropped first: the value may hold cells guarded by `resv`.
    data: T,
    /// The dma-buf's reservation (`dma_buf_export_info.resv`).
    #[pin]
    resv: OwnedResv,
    /// Mappings handed to the core and not given back: an importer that detaches (or a buffer
    /// released) with one still mapped leaves its device able to reach the pages, so `release`
    /// leaks the whole value instead of freeing them.
    mappings: Atomic<usize>,
    /// The owner of the pages of the kernel mapping the core holds, if the exporter's `vmap`
    /// made it with [`PageVmap::new_shared`]: the core keeps only the address, so the library
    /// keeps the owner here, under the reservation (held in `vmap` and `vunmap`).
    vmap_owner: ResvCell<Option<SharedPages>>,
    /// The buffer's place on an [`ExportList`], if exported into one; taken off at release.
    link: ListLink,
}

/// A dma-buf exported by exporter `T`: its reference, and access to the driver's value.
///
/// # Invariants
///
/// `buf` was exported with `T::OPS`, so its private data is a live `Exported<T>`, which lives
/// as long as the dma-buf.
pub struct ExportedBuf<T: Exporter> {
    buf: ARef<DmaBuf>,
    _data: PhantomData<T>,
}

impl<T: Exporter> ExportedBuf<T> {
    /// Exports a buffer of `size` bytes whose callbacks are `T`'s, read-write (the dma-buf's
    /// file is `O_RDWR`). `size` is a non-zero multiple of the page size, at most `isize::MAX`
    /// (`EINVAL` otherwise: importers map whole pages and keep the size in a signed `loff_t`),
    /// and every mapping `T` hands out must cover exactly `size` bytes: the library refuses
    /// one that does not, with a warning, since C importers trust the size. `make` is given the buffer's reservation, so that the value
    /// can hold [`ResvCell`]s guarded by it; the value is dropped when the buffer is released.
    ///
    /// The dma-buf holds a reference on this module until it is released. Exporting allocates
    /// and takes locks that sleep (R4), hence the [`MayBlock`].
    ///
    /// [`ResvCell`]: super::super::resv::ResvCell
    ///
    /// ```
    /// # use dmabuf_lock::{
    /// #     context::MayBlock,
    /// #     dmabuf::{ExportOps, ExportedAttachment, ExportedBuf, Exporter, PageMapping},
    /// #     resv::ResvHeld,
    /// # };
    /// # use kernel::dma::DataDirection;
    /// struct Nothing;
    /// static NOTHING_OPS: ExportOps<Nothing> = ExportOps::new();
    /// #[vtable]
    /// impl Exporter for Nothing {
    ///     const OPS: &'static ExportOps<Self> = &NOTHING_OPS;
    ///     fn map<'a>(
    ///         &'a self,
    ///         _held: &mut ResvHeld<'_>,
    ///         _attachment: &ExportedAttachment,
    ///         _dir: DataDirection,
    ///     ) -> Result<PageMapping<'a>> {
    ///         Err(ENODEV)
    ///     }
    /// }
    /// use kernel::page::PAGE_SIZE;
    /// let task = MayBlock::new()?;
    /// assert_eq!(ExportedBuf::new(&task, 0, |_| Ok(Nothing)).err(), Some(EINVAL));
    /// assert_eq!(ExportedBuf::new(&task, PAGE_SIZE + 1, |_| Ok(Nothing)).err(), Some(EINVAL));
    /// let buf = ExportedBuf::new(&task, PAGE_SIZE, |_| Ok(Nothing))?;
    /// assert!(buf.dmabuf().is_exported_with(Nothing::OPS.as_raw()));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn new(
        task: &MayBlock,
        size: usize,
        make: impl FnOnce(&Resv) -> Result<T>,
    ) -> Result<Self> {
        Self::export(task, size, None, make)
    }

    /// Exports a buffer as [`ExportedBuf::new`] does, and puts it on `list` until its release,
    /// for the driver's shrinker to find without keeping it alive (R2; see [`ExportList`]).
    ///
    /// ```
    /// # use dmabuf_lock::{context::MayBlock, dmabuf::{ExportList, ExportedBuf, Exporter}, resv::Resv};
    /// fn export<T: Exporter>(
    ///     task: &MayBlock,
    ///     list: &ExportList<T>,
    ///     make: impl FnOnce(&Resv) -> Result<T>,
    /// ) -> Result<ExportedBuf<T>> {
    ///     ExportedBuf::new_listed(task, kernel::page::PAGE_SIZE, list, make)
    /// }
    /// ```
    pub fn new_listed(
        task: &MayBlock,
        size: usize,
        list: &ExportList<T>,
        make: impl FnOnce(&Resv) -> Result<T>,
    ) -> Result<Self> {
        Self::export(task, size, Some(list), make)
    }

    fn export(
        _task: &MayBlock,
        size: usize,
        list: Option<&ExportList<T>>,
        make: impl FnOnce(&Resv) -> Result<T>,
    ) -> Result<Self> {
        if size == 0 || size % PAGE_SIZE != 0 || isize::try_from(size).is_err() {
            return Err(EINVAL);
        }
        // The buffer's ops are this module's code: not while its `init` runs (see `live_module`).
        let owner = live_module()?;
        let exported = KBox::pin_init(
            try_pin_init!(&this in Exported {
                type_id: TypeId::of::<T>(),
                mappings: Atomic::new(0),
                resv <- OwnedResv::new(),
                data: {
                    // SAFETY: `resv` is initialised (fields are initialised in the order
                    // written here) and pinned in the allocation `this` points to.
                    let resv: &Resv = unsafe { &(*this.as_ptr()).resv };
                    make(resv)?
                },
                vmap_owner: {
                    // SAFETY: As for `data`.
                    let resv: &Resv = unsafe { &(*this.as_ptr()).resv };
                    ResvCell::new(resv, None)
                },
                link: ListLink::new(list.map(|list| list.inner.clone())),
            }? Error),
            GFP_KERNEL,
        )?;
        // SAFETY: The value is handed to the dma-buf, which never moves it, and taken back once:
        // in `release`, or below if the export fails.
        let exported = KBox::into_raw(unsafe { Pin::into_inner_unchecked(exported) });
        let info = bindings::dma_buf_export_info {
            exp_name: <T::OwnerModule as kernel::ModuleMetadata>::NAME.as_char_ptr(),
            owner,
            ops: T::OPS.as_raw(),
            size,
            flags: bindings::O_RDWR as i32,
            // SAFETY: `exported` is live; only its address is taken.
            resv: unsafe { (*exported).resv.as_raw() },
            priv_: exported.cast(),
        };
        // SAFETY: `info` is complete and its ops are `T`'s; on success the dma-buf owns
        // `exported` (freed by `release`) and holds a reference on this module.
        let raw = from_err_ptr(unsafe { bindings::dma_buf_export(&info) }).inspect_err(|_| {
            // SAFETY: The export failed, so nothing else refers to `exported`.
            drop(unsafe { Pin::new_unchecked(KBox::from_raw(exported)) });
        })?;
        // SAFETY: `exported` holds the link and stays where it is until `release` (which takes
        // the link off first); the dma-buf and its file were just made. Pushed once.
        unsafe { (*exported).link.push(exported.cast(), raw.cast()) };
        // INVARIANT: Just exported with `T::OPS` and `exported` as private data.
        Ok(Self {
            // SAFETY: `dma_buf_export` returns a dma-buf with one reference for the caller,
            // which the `ARef` takes over.
            buf: unsafe { ARef::from_raw(NonNull::new_unchecked(raw.cast())) },
            _data: PhantomData,
        })
    }

    /// Takes `buf` as one of `T`'s: `EINVAL` if it was exported by another exporter (or by
    /// another type of this one).
    ///
    /// ```
    /// # use dmabuf_lock::{context::MayBlock, dmabuf::{DmaBuf, ExportedBuf, Exporter}};
    /// fn own<T: Exporter>(fd: i32) -> Result<ExportedBuf<T>> {
    ///     ExportedBuf::from_dmabuf(DmaBuf::from_fd(fd)?)
    /// }
    /// ```
    pub fn from_dmabuf(buf: ARef<DmaBuf>) -> Result<Self> {
        data_of::<T>(&buf)?;
        // INVARIANT: Checked just above.
        Ok(Self {
            buf,
            _data: PhantomData,
        })
    }

    /// Returns the driver's value.
    ///
    /// ```
    /// # use dmabuf_lock::dmabuf::{ExportedBuf, Exporter};
    /// fn value<T: Exporter>(buf: &ExportedBuf<T>) -> &T {
    ///     buf.data()
    /// }
    /// ```
    pub fn data(&self) -> &T {
        // SAFETY: The dma-buf is `T`'s (type invariant) and referenced by `self`.
        unsafe { &(*exported::<T>(&self.buf)).data }
    }

    /// Returns the dma-buf.
    ///
    /// ```
    /// # use dmabuf_lock::dmabuf::{ExportedBuf, Exporter};
    /// fn size<T: Exporter>(buf: &ExportedBuf<T>) -> usize {
    ///     buf.dmabuf().size()
    /// }
    /// ```
    pub fn dmabuf(&self) -> &DmaBuf {
        &self.buf
    }

    /// Returns the reference to the dma-buf.
    ///
    /// ```
    /// # use dmabuf_lock::dmabuf::{DmaBuf, ExportedBuf, Exporter};
    /// # use kernel::sync::aref::ARef;
    /// fn untyped<T: Exporter>(buf: ExportedBuf<T>) -> ARef<DmaBuf> {
    ///     buf.into_dmabuf()
    /// }
    /// ```
    pub fn into_dmabuf(self) -> ARef<DmaBuf> {
        self.buf
    }

    /// Installs the dma-buf in the file descriptor `fd` reserved for the current task, which
    /// takes over this reference (`dma_buf_fd_install()`). It cannot fail, and once done it
    /// cannot be undone: reserve the descriptor first, write its number wherever the caller
    /// expects it, and install it last, when nothing can fail any more.
    ///
    /// ```
    /// # use dmabuf_lock::dmabuf::{ExportedBuf, Exporter};
    /// use kernel::fs::file::FileDescriptorReservation;
    /// fn publish<T: Exporter>(buf: ExportedBuf<T>) -> Result<u32> {
    ///     let fd = FileDescriptorReservation::get_unused_fd_flags(kernel::bindings::O_CLOEXEC)?;
    ///     let number = fd.reserved_fd();
    ///     // ... copy `number` to the caller; return on a fault ...
    ///     buf.install(fd);
    ///     Ok(number)
    /// }
    /// ```
    pub fn install(self, fd: FileDescriptorReservation) {
        let raw = ARef::into_raw(self.buf);
        // SAFETY: `fd` is reserved for the current task and unused (the reservation is
        // `!Send` and not consumed); the dma-buf's file takes over the reference of `self`.
        unsafe { bindings::dma_buf_fd_install(raw.as_ptr().cast(), fd.reserved_fd() as i32) };
        // The descriptor is installed: its reservation must not be given back.
        core::mem::forget(fd);
    }
}

impl DmaBuf {
    /// Returns the value of exporter `T` behind this dma-buf: `EINVAL` if another exporter (or
    /// another type of this one) exported it.
    ///
    /// ```
    /// # use dmabuf_lock::dmabuf::{DmaBuf, Exporter};
    /// fn size_of_own<T: Exporter>(buf: &DmaBuf) -> Result<usize> {
    ///     buf.exported_data::<T>()?;
    ///     Ok(buf.size())
    /// }
    /// ```
    pub fn exported_data<T: Exporter>(&self) -> Result<&T> {
        data_of::<T>(self)
    }
}

/// The value of `T` behind `buf`, checked: ops first, then the type.
fn data_of<T: Exporter>(buf: &DmaBuf) -> Result<&T> {
    if !buf.is_exported_with(T::OPS.as_raw()) {
        return Err(EINVAL);
    }
    let exported = exported::<T>(buf);
    // SAFETY: The ops are an `ExportOps` of the library's, so the private data is an
    // `Exported<U>` of some exporter `U` (two types' ops may compare equal if the compiler
    // merged identical ones), whose `repr(C)` layout starts with its `TypeId`.
    if unsafe { *exported.cast::<TypeId>() } != TypeId::of::<T>() {
        return Err(EINVAL);
    }
    // SAFETY: The private data is an `Exported<T>`, live while `buf` is referenced.
    Ok(unsafe { &(*exported).data })
}

/// The private data of `buf`, as an `Exported<T>` (unchecked).
fn exported<T>(buf: &DmaBuf) -> *const Exported<T> {
    // SAFETY: The dma-buf is live; `priv` is set at export and never changes.
    unsafe { (*buf.as_raw()).priv_.cast() }
}
