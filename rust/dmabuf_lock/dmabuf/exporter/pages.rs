// SPDX-License-Identifier: GPL-2.0

//! What an exporter of system pages hands out: a DMA-mapped table of its pages for an
//! importer's device ([`PageMapping`]) and a kernel mapping of them ([`PageVmap`]).
//!
//! Both keep the pages for as long as they live, so the pages cannot be freed under a mapping
//! (with a bounce buffer, unmapping a table copies into its pages): either they borrow them
//! (`new`), or they own a reference to them (`new_shared`, over an `Arc<KVec<Page>>`). An
//! exporter whose buffers may move or be evicted under memory pressure (R2) keeps its pages in
//! an `Arc` and maps with `new_shared`: it may then replace its pages, under its reservation,
//! while an importer still holds a mapping of the old ones, which go when the last mapping does.
//! The library's exporter callbacks hand the mappings to the dma-buf core and take them back in
//! `unmap_dma_buf` and `vunmap`.
//!
//! [`page_is_zero`] tells whether a page holds only zeroes, reading it as C does (the pages of a
//! buffer may be written by userspace or a device at any time, so no Rust reference to their
//! contents is ever made): what an exporter needs to free the zero pages of a buffer it evicts.

use super::super::super::ffi;
use super::super::{check_direction, raw_device};
use core::{marker::PhantomData, ptr::NonNull};
use kernel::{
    bindings,
    device::Device,
    dma::DataDirection,
    error::to_result,
    page::{Page, PAGE_SIZE},
    prelude::*,
    scatterlist::SGTable,
    sync::{aref::ARef, Arc},
    types::Opaque,
};

/// Pages shared between an exporter's buffer and the mappings made of them: the last owner
/// frees them.
///
/// ```
/// use dmabuf_lock::dmabuf::SharedPages;
/// use kernel::{page::Page, sync::Arc};
/// let mut pages = KVec::new();
/// pages.push(Page::alloc_page(GFP_KERNEL | __GFP_ZERO)?, GFP_KERNEL)?;
/// let pages: SharedPages = Arc::new(pages, GFP_KERNEL)?;
/// let for_a_mapping = pages.clone();
/// drop(pages); // the mapping's reference keeps them
/// assert_eq!(for_a_mapping.len(), 1);
/// # Ok::<(), Error>(())
/// ```
pub type SharedPages = Arc<KVec<Page>>;

/// Returns whether `page` holds only zero bytes.
///
/// The page is read through a temporary kernel mapping (`kmap_local_page()`) with C's
/// `memchr_inv()`, never through a Rust reference: a dma-buf's pages may be written by
/// userspace or by a device at any time, and Rust code must not assume memory it reads stays as
/// read. The answer may therefore be stale when it returns; an exporter asks with its buffer
/// idle (no unsignalled fence, no user or device mapping: R2), so nothing writes it then.
///
/// ```
/// use dmabuf_lock::dmabuf::page_is_zero;
/// use kernel::page::Page;
/// let page = Page::alloc_page(GFP_KERNEL | __GFP_ZERO)?;
/// assert!(page_is_zero(&page));
/// // SAFETY: The page is this example's own; nothing else reads or writes it.
/// unsafe { page.write_raw([1u8].as_ptr(), 4095, 1)? };
/// assert!(!page_is_zero(&page));
/// # Ok::<(), Error>(())
/// ```
pub fn page_is_zero(page: &Page) -> bool {
    // SAFETY: `page` is a live page; the local mapping is undone below, on this task, before
    // any other `kmap_local_page()` of this function's.
    let addr = unsafe { bindings::kmap_local_page(page.as_ptr()) };
    // SAFETY: `addr` maps the page's `PAGE_SIZE` bytes; `memchr_inv()` only reads them.
    let first_nonzero = unsafe { bindings::memchr_inv(addr, 0, PAGE_SIZE) };
    // SAFETY: Undoes the mapping made above, the last one made on this task.
    unsafe { bindings::kunmap_local(addr) };
    first_nonzero.is_null()
}

/// A table of pages mapped for a device (`sg_alloc_table_from_pages()` and
/// `dma_map_sgtable()`), unmapped and freed on drop: what an exporter's
/// [`Exporter::map`](super::Exporter::map) returns.
///
/// # Invariants
///
/// `table.sgt` holds one entry per page of a slice, mapped for `table.dev` in `dir` and not
/// unmapped; the pages are borrowed for `'a`, or owned by `table.owner` (which is dropped only
/// after the table is unmapped).
///
/// # Examples
///
/// (Built in an exporter's `map` callback: see [`Exporter`](super::Exporter).)
///
/// ```
/// # use dmabuf_lock::dmabuf::PageMapping;
/// # use kernel::{device::Device, dma::DataDirection, faux, page::Page};
/// # let faux = faux::Registration::new(c"dmabuf_lock_doctest", None)?;
/// # let dev: &Device = AsRef::<faux::Device<kernel::device::Bound>>::as_ref(&faux).as_ref();
/// let pages = [Page::alloc_page(GFP_KERNEL)?];
/// // A device without a DMA mask (as this faux device) cannot be mapped for:
/// assert_eq!(PageMapping::new(dev, &pages, DataDirection::ToDevice).err(), Some(EINVAL));
/// // Nor can no pages, or no direction:
/// assert_eq!(PageMapping::new(dev, &[], DataDirection::ToDevice).err(), Some(EINVAL));
/// # Ok::<(), Error>(())
/// ```
#[must_use = "the table is unmapped when dropped"]
pub struct PageMapping<'a> {
    table: KBox<MappedTable>,
    _pages: PhantomData<&'a [Page]>,
}

/// The allocation behind a [`PageMapping`]: the `sg_table` first, so that the table pointer
/// the dma-buf core holds is the allocation's.
#[repr(C)]
struct MappedTable {
    sgt: Opaque<bindings::sg_table>,
    dev: ARef<Device>,
    dir: DataDirection,
    /// The bytes the table covers: its pages' size.
    size: usize,
    /// The pages' owner, for a mapping made by [`PageMapping::new_shared`]; dropped after the
    /// table is unmapped (fields drop after `Drop::drop`).
    _owner: Option<SharedPages>,
}

impl<'a> PageMapping<'a> {
    /// Maps `pages` for `dev` in direction `dir`; `EINVAL` for no pages, `DataDirection::None`
    /// or a device without a DMA mask (the DMA API would warn), and the DMA API's error if
    /// mapping fails.
    ///
    /// ```
    /// # use dmabuf_lock::dmabuf::PageMapping;
    /// # use kernel::{device::Device, dma::DataDirection, faux, page::Page};
    /// # let faux = faux::Registration::new(c"dmabuf_lock_doctest", None)?;
    /// # let dev: &Device = AsRef::<faux::Device<kernel::device::Bound>>::as_ref(&faux).as_ref();
    /// let pages = [Page::alloc_page(GFP_KERNEL)?];
    /// assert_eq!(PageMapping::new(dev, &pages, DataDirection::None).err(), Some(EINVAL));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn new(dev: &Device, pages: &'a [Page], dir: DataDirection) -> Result<Self> {
        // INVARIANT: The table maps `pages`, borrowed for `'a`.
        Ok(Self {
            table: map_table(dev, pages, dir, None)?,
            _pages: PhantomData,
        })
    }

    /// Returns the mapped entries (DMA addresses and lengths for the device).
    ///
    /// ```
    /// # use dmabuf_lock::dmabuf::PageMapping;
    /// fn segments(mapping: &PageMapping<'_>) -> usize {
    ///     mapping.table().iter().count()
    /// }
    /// ```
    pub fn table(&self) -> &SGTable {
        // SAFETY: The table is mapped and unchanged until `self` is dropped (type invariant).
        unsafe { SGTable::from_raw(self.table.sgt.get()) }
    }

    /// Returns the number of bytes the table covers (its pages' size).
    ///
    /// ```
    /// # use dmabuf_lock::dmabuf::PageMapping;
    /// fn covers(mapping: &PageMapping<'_>, size: usize) -> bool {
    ///     mapping.size() == size
    /// }
    /// ```
    pub fn size(&self) -> usize {
        self.table.size
    }

    /// Returns whether the table is mapped for `dev` in direction `dir`.
    pub(super) fn is_for(&self, dev: &Device, dir: DataDirection) -> bool {
        core::ptr::eq(&*self.table.dev, dev) && self.table.dir == dir
    }

    /// Hands the table over to the dma-buf core.
    pub(super) fn into_raw(self) -> *mut bindings::sg_table {
        // `sgt` is the first field of the `repr(C)` allocation.
        KBox::into_raw(self.table).cast()
    }

    /// Takes back a table handed over with [`PageMapping::into_raw`].
    ///
    /// # Safety
    ///
    /// `sgt` came from `into_raw` of a mapping whose pages are borrowed for `'a` (or owned by
    /// the mapping), and is taken back once.
    pub(super) unsafe fn from_raw(sgt: *mut bindings::sg_table) -> Self {
        // SAFETY: `sgt` is the start of a `MappedTable` boxed by `into_raw` (the caller's
        // contract), given back once.
        let table = unsafe { KBox::from_raw(sgt.cast::<MappedTable>()) };
        // INVARIANT: As when it was handed over; the caller vouches for the pages.
        Self {
            table,
            _pages: PhantomData,
        }
    }
}

impl PageMapping<'static> {
    /// Maps the shared `pages` for `dev` in direction `dir`, as [`PageMapping::new`] does, and
    /// keeps a reference to them until the mapping is dropped: the mapping borrows nothing, so
    /// the exporter may replace or drop its own reference meanwhile (evicting the buffer under
    /// its reservation, R2), and the pages stay until the device's mapping is gone.
    ///
    /// ```
    /// # use dmabuf_lock::dmabuf::PageMapping;
    /// # use kernel::{device::Device, dma::DataDirection, faux, page::Page, sync::Arc};
    /// # let faux = faux::Registration::new(c"dmabuf_lock_doctest", None)?;
    /// # let dev: &Device = AsRef::<faux::Device<kernel::device::Bound>>::as_ref(&faux).as_ref();
    /// let mut pages = KVec::new();
    /// pages.push(Page::alloc_page(GFP_KERNEL)?, GFP_KERNEL)?;
    /// let pages = Arc::new(pages, GFP_KERNEL)?;
    /// // The same checks as `new` (this faux device has no DMA mask):
    /// assert_eq!(PageMapping::new_shared(dev, pages.clone(), DataDirection::ToDevice).err(), Some(EINVAL));
    /// assert_eq!(PageMapping::new_shared(dev, pages, DataDirection::None).err(), Some(EINVAL));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn new_shared(dev: &Device, pages: SharedPages, dir: DataDirection) -> Result<Self> {
        let owner = pages.clone();
        // INVARIANT: The table maps the pages that its `owner` keeps.
        Ok(Self {
            table: map_table(dev, &pages, dir, Some(owner))?,
            _pages: PhantomData,
        })
    }
}

/// Maps `pages` for `dev` in `dir` into a new table that keeps `owner`: the work of
/// [`PageMapping::new`] and [`PageMapping::new_shared`].
fn map_table(
    dev: &Device,
    pages: &[Page],
    dir: DataDirection,
    owner: Option<SharedPages>,
) -> Result<KBox<MappedTable>> {
    check_direction(dir)?;
    let raw_dev = raw_device(dev);
    // SAFETY: `dev` is a live device; `dma_mask` is a plain field of it.
    if pages.is_empty() || unsafe { (*raw_dev).dma_mask }.is_null() {
        return Err(EINVAL);
    }
    let (mut ptrs, count, size) = page_array(pages)?;
    // SAFETY: `dev` is a live device with a DMA mask.
    let max_segment = unsafe { ffi::dl_dma_max_segment(raw_dev) };
    let sgt = Opaque::<bindings::sg_table>::zeroed();
    // SAFETY: The table is zeroed, as the call expects; `ptrs` holds `count` live pages;
    // segments stay within what the device can map in one (swiotlb, IOMMU limits).
    to_result(unsafe {
        bindings::sg_alloc_table_from_pages_segment(
            sgt.get(),
            ptrs.as_mut_ptr(),
            count,
            0,
            size,
            max_segment,
            bindings::GFP_KERNEL,
        )
    })?;
    // SAFETY: The table was just filled with `pages`; `dev` has a DMA mask.
    let mapped = unsafe { bindings::dma_map_sgtable(raw_dev, sgt.get(), dir.into(), 0) };
    if let Err(e) = to_result(mapped) {
        // SAFETY: Frees the entries allocated above; the table was never mapped.
        unsafe { bindings::sg_free_table(sgt.get()) };
        return Err(e);
    }
    // An `sg_table` refers to its entries, not to itself: it may move.
    let table = MappedTable {
        sgt,
        dev: dev.into(),
        dir,
        size,
        _owner: owner,
    };
    // If the allocation fails, dropping `table` unmaps and frees it.
    KBox::new(table, GFP_KERNEL).map_err(Into::into)
}

/// The C array of `pages`, their count and their size in bytes, checked before allocating.
fn page_array(pages: &[Page]) -> Result<(KVec<*mut bindings::page>, u32, usize)> {
    let count = u32::try_from(pages.len())?;
    let size = pages.len().checked_mul(PAGE_SIZE).ok_or(EINVAL)?;
    let mut ptrs = KVec::with_capacity(pages.len(), GFP_KERNEL)?;
    for page in pages {
        ptrs.push(page.as_ptr(), GFP_KERNEL)?;
    }
    Ok((ptrs, count, size))
}

impl Drop for MappedTable {
    fn drop(&mut self) {
        let sgt = self.sgt.get();
        // SAFETY: A `MappedTable` exists only inside a `PageMapping` (or handed over from one),
        // so it is mapped for `dev` in `dir`, and it is unmapped once, here, while the
        // mapping's pages are still borrowed, or kept by `_owner` (dropped after this); then
        // its entries are freed.
        unsafe {
            ffi::dl_dma_unmap_sgtable(raw_device(&self.dev), sgt, self.dir.into());
            bindings::sg_free_table(sgt);
        }
    }
}

// SAFETY: The table is exporter memory tied to no task; it is only read through `&self` and
// unmapped on drop, from whichever task drops it.
unsafe impl Send for PageMapping<'_> {}

// SAFETY: `&self` only reads the table.
unsafe impl Sync for PageMapping<'_> {}

/// A kernel mapping of pages (`vmap()`), unmapped on drop: what an exporter's
/// [`Exporter::vmap`](super::Exporter::vmap) returns.
///
/// The mapping is for the dma-buf core and its importers (`dma_buf_vmap()`), which access the
/// memory as C does, under CPU access; the exporter gets no Rust view of it, since userspace and
/// devices may write the pages at any time.
///
/// # Invariants
///
/// `addr` is a live `vmap()` of the pages borrowed for `'a` or kept by `owner`, unmapped only
/// on drop (before `owner` is dropped).
///
/// ```
/// # use dmabuf_lock::dmabuf::PageVmap;
/// # use kernel::page::Page;
/// let pages = [Page::alloc_page(GFP_KERNEL)?, Page::alloc_page(GFP_KERNEL)?];
/// let vmap = PageVmap::new(&pages)?;
/// assert!(!vmap.as_ptr().is_null());
/// assert_eq!(PageVmap::new(&[]).err(), Some(EINVAL));
/// # Ok::<(), Error>(())
/// ```
#[must_use = "the pages are unmapped when dropped"]
pub struct PageVmap<'a> {
    addr: NonNull<c_void>,
    /// The bytes mapped: the pages' size.
    size: usize,
    /// The pages' owner, for a mapping made by [`PageVmap::new_shared`].
    owner: Option<SharedPages>,
    _pages: PhantomData<&'a [Page]>,
}

impl<'a> PageVmap<'a> {
    /// Maps `pages` contiguously into the kernel's address space; `EINVAL` for no pages,
    /// `ENOMEM` if `vmap()` fails.
    ///
    /// ```
    /// # use dmabuf_lock::dmabuf::PageVmap;
    /// # use kernel::page::Page;
    /// let pages = [Page::alloc_page(GFP_KERNEL)?];
    /// let _vmap = PageVmap::new(&pages)?;
    /// # Ok::<(), Error>(())
    /// ```
    pub fn new(pages: &'a [Page]) -> Result<Self> {
        let (addr, size) = vmap_pages(pages)?;
        // INVARIANT: A live mapping of the borrowed pages.
        Ok(Self {
            addr,
            size,
            owner: None,
            _pages: PhantomData,
        })
    }

    /// Returns the address of the mapping, for C code that reads or writes the buffer under CPU
    /// access.
    ///
    /// ```
    /// # use dmabuf_lock::dmabuf::PageVmap;
    /// # use kernel::page::Page;
    /// let pages = [Page::alloc_page(GFP_KERNEL)?];
    /// assert!(!PageVmap::new(&pages)?.as_ptr().is_null());
    /// # Ok::<(), Error>(())
    /// ```
    pub fn as_ptr(&self) -> *mut c_void {
        self.addr.as_ptr()
    }

    /// Returns the number of bytes mapped (the pages' size).
    ///
    /// ```
    /// # use dmabuf_lock::dmabuf::PageVmap;
    /// # use kernel::page::{Page, PAGE_SIZE};
    /// let pages = [Page::alloc_page(GFP_KERNEL)?, Page::alloc_page(GFP_KERNEL)?];
    /// assert_eq!(PageVmap::new(&pages)?.size(), 2 * PAGE_SIZE);
    /// # Ok::<(), Error>(())
    /// ```
    pub fn size(&self) -> usize {
        self.size
    }

    /// Hands the mapping over to the dma-buf core, which keeps only the address: the owner of
    /// the pages, if the mapping has one, is returned to be kept beside it.
    pub(super) fn into_raw(self) -> (*mut c_void, Option<SharedPages>) {
        let mut this = core::mem::ManuallyDrop::new(self);
        (this.addr.as_ptr(), this.owner.take())
    }

    /// Takes back a mapping handed over with [`PageVmap::into_raw`], with the owner that
    /// `into_raw` returned.
    ///
    /// # Safety
    ///
    /// `addr` came from `into_raw` of a mapping of `size` bytes whose pages are borrowed for
    /// `'a`, or kept by `owner`, and is taken back once.
    pub(super) unsafe fn from_raw(
        addr: NonNull<c_void>,
        size: usize,
        owner: Option<SharedPages>,
    ) -> Self {
        // INVARIANT: The caller's contract.
        Self {
            addr,
            size,
            owner,
            _pages: PhantomData,
        }
    }
}

impl PageVmap<'static> {
    /// Maps the shared `pages` into the kernel, as [`PageVmap::new`] does, and keeps a
    /// reference to them until the mapping is dropped, so the exporter may replace its own
    /// meanwhile (R2). The library keeps that reference beside the address it hands to the
    /// dma-buf core, under the buffer's reservation, until `vunmap`.
    ///
    /// ```
    /// # use dmabuf_lock::dmabuf::PageVmap;
    /// # use kernel::{page::{Page, PAGE_SIZE}, sync::Arc};
    /// let mut pages = KVec::new();
    /// pages.push(Page::alloc_page(GFP_KERNEL)?, GFP_KERNEL)?;
    /// let pages = Arc::new(pages, GFP_KERNEL)?;
    /// let vmap = PageVmap::new_shared(pages.clone())?;
    /// drop(pages); // the mapping keeps them
    /// assert_eq!(vmap.size(), PAGE_SIZE);
    /// assert_eq!(PageVmap::new_shared(Arc::new(KVec::new(), GFP_KERNEL)?).err(), Some(EINVAL));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn new_shared(pages: SharedPages) -> Result<Self> {
        let (addr, size) = vmap_pages(&pages)?;
        // INVARIANT: A live mapping of the pages that `owner` keeps.
        Ok(Self {
            addr,
            size,
            owner: Some(pages),
            _pages: PhantomData,
        })
    }
}

/// `vmap()`s `pages`: the address and the size mapped. The caller keeps the pages alive until it
/// unmaps.
fn vmap_pages(pages: &[Page]) -> Result<(NonNull<c_void>, usize)> {
    if pages.is_empty() {
        return Err(EINVAL);
    }
    let (mut ptrs, count, size) = page_array(pages)?;
    // SAFETY: `ptrs` holds `count` live pages; `vmap` copies the array.
    let addr = unsafe { ffi::dl_vmap_pages(ptrs.as_mut_ptr(), count) };
    Ok((NonNull::new(addr).ok_or(ENOMEM)?, size))
}

impl Drop for PageVmap<'_> {
    fn drop(&mut self) {
        // SAFETY: `addr` is a live `vmap()` (type invariant), unmapped once, here, before the
        // pages' `owner` (if any) is dropped.
        unsafe { ffi::dl_vunmap(self.addr.as_ptr()) };
    }
}

// SAFETY: A kernel mapping may be unmapped from any task.
unsafe impl Send for PageVmap<'_> {}

// SAFETY: `&self` only returns the address.
unsafe impl Sync for PageVmap<'_> {}
