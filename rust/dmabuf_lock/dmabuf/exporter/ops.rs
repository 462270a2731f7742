// SPDX-License-Identifier: GPL-2.0

//! The `dma_buf_ops` generated for an [`Exporter`], and the callbacks that turn the core's calls
//! into calls of the driver's methods.
//!
//! Every callback gets the dma-buf (or an attachment of it) of a buffer exported with these ops
//! by [`ExportedBuf::new`](super::ExportedBuf::new), so its private data is an `Exported<T>`,
//! live until `release`: the core calls no other callback after `release`, nor `release` while
//! one runs (each runs under a reference the caller holds).

use super::{
    super::super::{
        context::MayBlock,
        resv::{Resv, ResvHeld},
    },
    fault, Exported, ExportedAttachment, Exporter, PageMapping, PageVmap,
};
use core::{marker::PhantomData, ptr::NonNull};
use kernel::{
    bindings,
    dma::DataDirection,
    error::code::{EINTR, ERESTARTSYS},
    mm::virt::VmaNew,
    prelude::*,
    sync::atomic::Relaxed,
};

/// The `dma_buf_ops` of exporter `T`, with the callbacks `T` implements (NULL for the others).
/// Declare one `static` per exporter type and name it in [`Exporter::OPS`]:
///
/// ```
/// # use dmabuf_lock::{dmabuf::{ExportOps, ExportedAttachment, Exporter, PageMapping}, resv::ResvHeld};
/// # use kernel::dma::DataDirection;
/// struct Vram;
/// static VRAM_OPS: ExportOps<Vram> = ExportOps::new();
/// #[vtable]
/// impl Exporter for Vram {
///     const OPS: &'static ExportOps<Self> = &VRAM_OPS;
///     fn map<'a>(
///         &'a self,
///         _held: &mut ResvHeld<'_>,
///         _attachment: &ExportedAttachment,
///         _dir: DataDirection,
///     ) -> Result<PageMapping<'a>> {
///         Err(ENOMEM)
///     }
/// }
/// assert!(VRAM_OPS.as_raw().mmap.is_none());
/// assert!(VRAM_OPS.as_raw().map_dma_buf.is_some());
/// ```
///
/// With [`Exporter::fault`], the ops hold the buffer's `vm_operations_struct` too, which the
/// generated `mmap` installs in every vma of the buffer:
///
/// ```
/// # use dmabuf_lock::{dmabuf::{ExportOps, ExportedAttachment, Exporter, PageMapping}, resv::ResvHeld};
/// # use kernel::{dma::DataDirection, page::Page};
/// struct Lazy(KVec<Page>);
/// static LAZY_OPS: ExportOps<Lazy> = ExportOps::new();
/// #[vtable]
/// impl Exporter for Lazy {
///     const OPS: &'static ExportOps<Self> = &LAZY_OPS;
///     fn map<'a>(
///         &'a self,
///         _held: &mut ResvHeld<'_>,
///         _attachment: &ExportedAttachment,
///         _dir: DataDirection,
///     ) -> Result<PageMapping<'a>> {
///         Err(ENOMEM)
///     }
///     fn fault<'a>(&'a self, _held: &'a mut ResvHeld<'_>, pgoff: usize) -> Result<&'a Page> {
///         self.0.get(pgoff).ok_or(EINVAL)
///     }
/// }
/// assert!(LAZY_OPS.as_raw().mmap.is_some());
/// ```
///
/// # Invariants
///
/// Every callback in the ops (`dma_buf_ops` and `vm_operations_struct`) is one of this module's
/// or of `fault.rs`, instantiated for `T`, and `unpin` is set exactly when `pin` is (the core
/// wants both or neither): a dma-buf whose ops are these was exported by
/// [`ExportedBuf::new`](super::ExportedBuf::new) (the only place that passes them to the core)
/// for `T`, or for a type whose ops the compiler merged with these, which it does only for
/// identical callbacks; its private data is then that type's `Exported<_>`, and where the type
/// matters (the fault handler, [`DmaBuf::exported_data`](super::super::DmaBuf::exported_data))
/// its `TypeId` is checked. The vm ops are installed only by the `mmap` of these ops, in a vma
/// whose `vm_file` is such a dma-buf's file.
pub struct ExportOps<T: Exporter> {
    ops: bindings::dma_buf_ops,
    vm_ops: bindings::vm_operations_struct,
    _exporter: PhantomData<fn() -> T>,
}

impl<T: Exporter> ExportOps<T> {
    /// The ops of `T`, for a `static`.
    ///
    /// ```
    /// # use dmabuf_lock::{dmabuf::{ExportOps, ExportedAttachment, Exporter, PageMapping}, resv::ResvHeld};
    /// # use kernel::dma::DataDirection;
    /// struct Scanout;
    /// static SCANOUT_OPS: ExportOps<Scanout> = ExportOps::new();
    /// #[vtable]
    /// impl Exporter for Scanout {
    ///     const OPS: &'static ExportOps<Self> = &SCANOUT_OPS;
    ///     fn pin(&self, _held: &mut ResvHeld<'_>, _attachment: &ExportedAttachment) -> Result {
    ///         Ok(())
    ///     }
    ///     fn map<'a>(
    ///         &'a self,
    ///         _held: &mut ResvHeld<'_>,
    ///         _attachment: &ExportedAttachment,
    ///         _dir: DataDirection,
    ///     ) -> Result<PageMapping<'a>> {
    ///         Err(ENOMEM)
    ///     }
    /// }
    /// // `pin` brings `unpin`: the core wants both or neither.
    /// assert!(SCANOUT_OPS.as_raw().pin.is_some() && SCANOUT_OPS.as_raw().unpin.is_some());
    /// ```
    pub const fn new() -> Self {
        // INVARIANT: The callbacks below are this module's, for `T`; `pin` and `unpin` are set
        // together.
        // The core calls `unpin` only after `pin`, and `vunmap` only after `vmap`: implemented
        // alone, either would silently never run. Evaluated where the `static` is, so this
        // fails to compile.
        assert!(
            !T::HAS_UNPIN || T::HAS_PIN,
            "an exporter that implements `unpin` must implement `pin`"
        );
        assert!(
            !T::HAS_VUNMAP || T::HAS_VMAP,
            "an exporter that implements `vunmap` must implement `vmap`"
        );
        // With `fault`, the library's `mmap` sets the vma up for it: a driver's `mmap` beside
        // it would either be ignored or map pages that the fault path does not know about.
        assert!(
            !(T::HAS_MMAP && T::HAS_FAULT),
            "an exporter implements `mmap` or `fault`, not both"
        );
        Self {
            ops: bindings::dma_buf_ops {
                attach: if T::HAS_ATTACH {
                    Some(attach::<T>)
                } else {
                    None
                },
                detach: if T::HAS_DETACH {
                    Some(detach::<T>)
                } else {
                    None
                },
                pin: if T::HAS_PIN { Some(pin::<T>) } else { None },
                unpin: if T::HAS_PIN { Some(unpin::<T>) } else { None },
                map_dma_buf: Some(map::<T>),
                unmap_dma_buf: Some(unmap::<T>),
                release: Some(release::<T>),
                begin_cpu_access: if T::HAS_BEGIN_CPU_ACCESS {
                    Some(begin_cpu_access::<T>)
                } else {
                    None
                },
                end_cpu_access: if T::HAS_END_CPU_ACCESS {
                    Some(end_cpu_access::<T>)
                } else {
                    None
                },
                mmap: if T::HAS_FAULT {
                    Some(fault::mmap::<T>)
                } else if T::HAS_MMAP {
                    Some(mmap::<T>)
                } else {
                    None
                },
                vmap: if T::HAS_VMAP { Some(vmap::<T>) } else { None },
                vunmap: if T::HAS_VMAP { Some(vunmap::<T>) } else { None },
            },
            vm_ops: fault::vm_ops::<T>(),
            _exporter: PhantomData,
        }
    }

    /// Returns the C ops, as [`DmaBuf::is_exported_with`](super::super::DmaBuf::is_exported_with)
    /// takes them. Only the library exports a dma-buf with them (the type's invariants rest on
    /// it): passing them to `dma_buf_export()` takes `unsafe` code, which must not.
    ///
    /// ```
    /// # use dmabuf_lock::dmabuf::{DmaBuf, Exporter};
    /// fn is_mine<T: Exporter>(buf: &DmaBuf) -> bool {
    ///     buf.is_exported_with(T::OPS.as_raw())
    /// }
    /// ```
    pub const fn as_raw(&'static self) -> &'static bindings::dma_buf_ops {
        &self.ops
    }

    /// Returns the vm ops that the `mmap` of an exporter with [`Exporter::fault`] installs in
    /// the buffer's vmas (only `fault` is set; unused without [`Exporter::fault`]). Private to
    /// the library: the fault handler relies on its vma having a `vm_file` and on that vma
    /// keeping this module loaded, which only the library's `mmap` guarantees.
    pub(super) const fn vm_ops(&'static self) -> &'static bindings::vm_operations_struct {
        &self.vm_ops
    }
}

impl<T: Exporter> Default for ExportOps<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// The `Exported<T>` behind `dmabuf`, borrowed for the callback.
///
/// # Safety
///
/// `dmabuf` is a live dma-buf exported with `T`'s ops, not released during `'a`.
unsafe fn exported<'a, T: Exporter>(dmabuf: *mut bindings::dma_buf) -> &'a Exported<T> {
    // SAFETY: Exported with `T`'s ops, so by `ExportedBuf::new` with an `Exported<T>` as private
    // data, which lives until `release` (the caller's contract).
    unsafe { &*(*dmabuf).priv_.cast::<Exported<T>>() }
}

/// The `Exported<T>` and the exporter's view of `attach`.
///
/// # Safety
///
/// `attach` is a live attachment of a dma-buf exported with `T`'s ops, for `'a`.
unsafe fn attached<'a, T: Exporter>(
    attach: *mut bindings::dma_buf_attachment,
) -> (&'a Exported<T>, &'a ExportedAttachment) {
    // SAFETY: The caller's contract; an attachment holds its dma-buf (the importer references
    // it while attached).
    unsafe {
        (
            exported((*attach).dmabuf),
            ExportedAttachment::from_raw(attach),
        )
    }
}

/// The proof for a callback that the core calls with the buffer's reservation held.
///
/// # Safety
///
/// The core holds `resv` for the current task during `'a`. This is the core's locking
/// convention for the callback (every path to it locks the reservation first); its
/// `dma_resv_assert_held()` checks that only under lockdep, so the caller relies on C's contract.
unsafe fn held<'a>(resv: &'a Resv) -> ResvHeld<'a> {
    // SAFETY: The caller's contract. Any proof of this reservation on this task belongs to a
    // library call that borrowed it mutably to call into the core (mapping an attachment,
    // invalidating mappings), or the lock was taken by C code: see `ResvHeld`.
    unsafe { ResvHeld::new(resv) }
}

/// The direction of the core's call: it never passes `DMA_NONE` to these callbacks (the DMA
/// API `BUG_ON`s it), and the library refuses it anyway.
fn direction(dir: bindings::dma_data_direction) -> Result<DataDirection> {
    [
        DataDirection::Bidirectional,
        DataDirection::ToDevice,
        DataDirection::FromDevice,
    ]
    .into_iter()
    .find(|d| bindings::dma_data_direction::from(*d) == dir)
    .ok_or(EINVAL)
}

/// `EINVAL`, with a warning, unless a mapping of `mapped` bytes covers the whole buffer of
/// `size` bytes: C importers trust the dma-buf's size, and would read past a shorter mapping.
fn check_covers(mapped: usize, size: usize) -> Result {
    if mapped == size {
        return Ok(());
    }
    pr_warn!("dma-buf exporter mapped {mapped} bytes of a {size}-byte buffer; refused\n");
    Err(EINVAL)
}

/// `EINVAL`, with a warning, unless `mapping` is what the core asked for: mapped for the
/// attachment's device, in direction `dir`, over the buffer's `size` bytes. The core hands the
/// table to the importer, whose device would otherwise use addresses of another device's (or a
/// direction's) mapping.
fn check_mapping(
    mapping: &PageMapping<'_>,
    attachment: &ExportedAttachment,
    dir: DataDirection,
    size: usize,
) -> Result {
    if !mapping.is_for(attachment.device(), dir) {
        pr_warn!("dma-buf exporter mapped for another device or direction; refused\n");
        return Err(EINVAL);
    }
    check_covers(mapping.size(), size)
}

/// The errno of a callback's result.
fn errno(result: Result) -> c_int {
    match result {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// `.attach`: the driver's `attach`.
///
/// # Safety
///
/// Called by the dma-buf core only, for a buffer exported with `T`'s ops, as the op's contract
/// in `<linux/dma-buf.h>` says.
unsafe extern "C" fn attach<T: Exporter>(
    dmabuf: *mut bindings::dma_buf,
    attach: *mut bindings::dma_buf_attachment,
) -> c_int {
    // SAFETY: The core passes one of `T`'s live dma-bufs.
    let exported = unsafe { exported::<T>(dmabuf) };
    // SAFETY: The core passes the attachment being made for that dma-buf.
    let attachment = unsafe { ExportedAttachment::from_raw(attach) };
    errno(exported.data.attach(attachment))
}

/// `.detach`: the driver's `detach`.
///
/// # Safety
///
/// Called by the dma-buf core only, for a buffer exported with `T`'s ops, as the op's contract
/// in `<linux/dma-buf.h>` says.
unsafe extern "C" fn detach<T: Exporter>(
    dmabuf: *mut bindings::dma_buf,
    attach: *mut bindings::dma_buf_attachment,
) {
    // SAFETY: The core passes one of `T`'s live dma-bufs.
    let exported = unsafe { exported::<T>(dmabuf) };
    // SAFETY: The core passes that dma-buf's attachment being freed.
    let attachment = unsafe { ExportedAttachment::from_raw(attach) };
    exported.data.detach(attachment);
}

/// `.pin`: the driver's `pin`, with the proof of the held reservation.
///
/// # Safety
///
/// Called by the dma-buf core only, for a buffer exported with `T`'s ops, as the op's contract
/// in `<linux/dma-buf.h>` says.
unsafe extern "C" fn pin<T: Exporter>(attach: *mut bindings::dma_buf_attachment) -> c_int {
    // SAFETY: The core passes a live attachment of one of `T`'s dma-bufs.
    let (exported, attachment) = unsafe { attached::<T>(attach) };
    // SAFETY: `dma_buf_pin()` and `dma_buf_map_attachment()` hold the reservation.
    let mut held = unsafe { held(&exported.resv) };
    errno(exported.data.pin(&mut held, attachment))
}

/// `.unpin`: the driver's `unpin` if it has one, with the proof.
///
/// # Safety
///
/// Called by the dma-buf core only, for a buffer exported with `T`'s ops, as the op's contract
/// in `<linux/dma-buf.h>` says.
unsafe extern "C" fn unpin<T: Exporter>(attach: *mut bindings::dma_buf_attachment) {
    // SAFETY: The core passes a live attachment of one of `T`'s dma-bufs.
    let (exported, attachment) = unsafe { attached::<T>(attach) };
    if T::HAS_UNPIN {
        // SAFETY: `dma_buf_unpin()` and `dma_buf_unmap_attachment()` hold the reservation.
        let mut held = unsafe { held(&exported.resv) };
        exported.data.unpin(&mut held, attachment);
    }
}

/// `.map_dma_buf`: the driver's `map`, with the proof; its mapping is handed to the core.
///
/// # Safety
///
/// Called by the dma-buf core only, for a buffer exported with `T`'s ops, as the op's contract
/// in `<linux/dma-buf.h>` says.
unsafe extern "C" fn map<T: Exporter>(
    attach: *mut bindings::dma_buf_attachment,
    dir: bindings::dma_data_direction,
) -> *mut bindings::sg_table {
    // SAFETY: The core passes a live attachment of one of `T`'s dma-bufs.
    let (exported, attachment) = unsafe { attached::<T>(attach) };
    // SAFETY: The attachment's dma-buf is live; `size` is set at export and never changes.
    let size = unsafe { (*(*attach).dmabuf).size };
    // SAFETY: `dma_buf_map_attachment()` holds the reservation.
    let mut held = unsafe { held(&exported.resv) };
    let mapped = direction(dir).and_then(|dir| {
        let mapping = exported.data.map(&mut held, attachment, dir)?;
        if let Err(e) = check_mapping(&mapping, attachment, dir, size) {
            // The driver gets back every mapping its `map` returned, a refused one too, so that
            // what it counted there is undone.
            if T::HAS_UNMAP {
                exported.data.unmap(&mut held, attachment, mapping);
            }
            return Err(e);
        }
        Ok(mapping)
    });
    match mapped {
        Ok(mapping) => {
            exported.mappings.add(1, Relaxed);
            mapping.into_raw()
        }
        Err(e) => e.to_ptr(),
    }
}

/// `.unmap_dma_buf`: takes the mapping back and gives it to the driver's `unmap`, or drops it.
///
/// # Safety
///
/// Called by the dma-buf core only, for a buffer exported with `T`'s ops, as the op's contract
/// in `<linux/dma-buf.h>` says.
unsafe extern "C" fn unmap<T: Exporter>(
    attach: *mut bindings::dma_buf_attachment,
    sgt: *mut bindings::sg_table,
    _dir: bindings::dma_data_direction,
) {
    // SAFETY: The core passes a live attachment of one of `T`'s dma-bufs.
    let (exported, attachment) = unsafe { attached::<T>(attach) };
    // SAFETY: The core gives back, once, a table that `map` returned for this attachment (the
    // debug wrapper of `CONFIG_DMABUF_DEBUG` is removed before this call). Its pages are
    // borrowed from `exported.data`, which lives until `release`, after every unmap.
    let mapping = unsafe { PageMapping::from_raw(sgt) };
    exported.mappings.fetch_sub(1, Relaxed);
    if T::HAS_UNMAP {
        // SAFETY: `dma_buf_unmap_attachment()` holds the reservation, as does the error path of
        // `dma_buf_map_attachment()`.
        let mut held = unsafe { held(&exported.resv) };
        exported.data.unmap(&mut held, attachment, mapping);
    }
}

/// `.release`: drops the driver's value, then the reservation; leaks both if a mapping was
/// never given back (a C importer that detached with a table still mapped, or a leaked mapping
/// of a Rust one), since the importer's device may still reach the pages.
///
/// # Safety
///
/// Called by the dma-buf core only, for a buffer exported with `T`'s ops, as the op's contract
/// in `<linux/dma-buf.h>` says.
unsafe extern "C" fn release<T: Exporter>(dmabuf: *mut bindings::dma_buf) {
    // SAFETY: The core passes one of `T`'s live dma-bufs; its private data is freed only below.
    let exported = unsafe { (*dmabuf).priv_.cast::<Exported<T>>() };
    // Off its `ExportList` first, whatever happens next: the list must not reach the dma-buf,
    // which the core frees after this call. A visit under way is waited for.
    // SAFETY: As above: live.
    unsafe { (*exported).link.unlink() };
    // SAFETY: As above: live until freed below. The last reference is gone, so no map or unmap
    // runs any more, and each ran under a reference whose drop (a fully ordered atomic) comes
    // before this release.
    let mapped = unsafe { (*exported).mappings.load(Relaxed) };
    if mapped != 0 {
        pr_warn!("dma-buf released with {mapped} mapping(s) never unmapped; leaking its pages\n");
        return;
    }
    // SAFETY: Nothing refers to the private data any more, which `ExportedBuf::new` boxed and
    // pinned, and which is freed once, here. The driver's value is dropped before the
    // reservation.
    drop(unsafe { Pin::new_unchecked(KBox::from_raw(exported)) });
}

/// `.begin_cpu_access`: the driver's `begin_cpu_access`.
///
/// # Safety
///
/// Called by the dma-buf core only, for a buffer exported with `T`'s ops, as the op's contract
/// in `<linux/dma-buf.h>` says.
unsafe extern "C" fn begin_cpu_access<T: Exporter>(
    dmabuf: *mut bindings::dma_buf,
    dir: bindings::dma_data_direction,
) -> c_int {
    // SAFETY: The core passes one of `T`'s live dma-bufs.
    let exported = unsafe { exported::<T>(dmabuf) };
    errno(direction(dir).and_then(|dir| exported.data.begin_cpu_access(dir)))
}

/// `.end_cpu_access`: the driver's `end_cpu_access`.
///
/// # Safety
///
/// Called by the dma-buf core only, for a buffer exported with `T`'s ops, as the op's contract
/// in `<linux/dma-buf.h>` says.
unsafe extern "C" fn end_cpu_access<T: Exporter>(
    dmabuf: *mut bindings::dma_buf,
    dir: bindings::dma_data_direction,
) -> c_int {
    // SAFETY: The core passes one of `T`'s live dma-bufs.
    let exported = unsafe { exported::<T>(dmabuf) };
    errno(direction(dir).and_then(|dir| exported.data.end_cpu_access(dir)))
}

/// `.mmap`: the driver's `mmap`, with the vma being set up and its page offset.
///
/// # Safety
///
/// Called by the dma-buf core only, for a buffer exported with `T`'s ops, as the op's contract
/// in `<linux/dma-buf.h>` says.
unsafe extern "C" fn mmap<T: Exporter>(
    dmabuf: *mut bindings::dma_buf,
    vma: *mut bindings::vm_area_struct,
) -> c_int {
    // SAFETY: The core passes one of `T`'s live dma-bufs and a vma being set up for it, from
    // the `mmap` of the dma-buf's file or `dma_buf_mmap()`.
    let (exported, vma, pgoff) = unsafe {
        (
            exported::<T>(dmabuf),
            VmaNew::from_raw(vma),
            (*vma).vm_pgoff,
        )
    };
    // The caller holds the process's `mmap_lock`, under which a reservation may be locked
    // (R1: `mmap_lock` before the reservation). A signal interrupts the wait, and the `mmap()`
    // is restarted after its handler (`ERESTARTSYS`) rather than failed with `EINTR`.
    let locked = MayBlock::new().and_then(|task| {
        let guard = exported.resv.lock_interruptible(&task).map_err(|e| {
            if e == EINTR {
                ERESTARTSYS
            } else {
                e
            }
        })?;
        // SAFETY: The guard holds the reservation for the current task until it is dropped
        // below, after the driver's `mmap` returns; it is not used meanwhile, so the proof is
        // the only one in use.
        let mut held = unsafe { held(&exported.resv) };
        let result = exported.data.mmap(&mut held, vma, pgoff);
        drop(guard);
        result
    });
    errno(locked)
}

/// `.vmap`: the driver's `vmap`, with the proof; its address is handed to the core.
///
/// # Safety
///
/// Called by the dma-buf core only, for a buffer exported with `T`'s ops, as the op's contract
/// in `<linux/dma-buf.h>` says.
unsafe extern "C" fn vmap<T: Exporter>(
    dmabuf: *mut bindings::dma_buf,
    map: *mut bindings::iosys_map,
) -> c_int {
    // SAFETY: The core passes one of `T`'s live dma-bufs; `size` never changes.
    let (exported, size) = unsafe { (exported::<T>(dmabuf), (*dmabuf).size) };
    // SAFETY: `dma_buf_vmap()` holds the reservation.
    let mut held = unsafe { held(&exported.resv) };
    let mapped = exported.data.vmap(&mut held).and_then(|vmap| {
        check_covers(vmap.size(), size)?;
        Ok(vmap)
    });
    let mapped = mapped.and_then(|vmap| {
        // The core maps once for its first user, and unmaps before mapping again; a mapping
        // whose pages' owner has no slot would be refused (never the case under C's contract).
        let slot = exported.vmap_owner.get_mut(&mut held)?;
        if slot.is_some() {
            return Err(EBUSY);
        }
        let (addr, owner) = vmap.into_raw();
        *slot = owner;
        Ok(addr)
    });
    match mapped {
        Ok(addr) => {
            // SAFETY: `map` is the core's map to fill: a system-memory address.
            unsafe {
                (*map).__bindgen_anon_1.vaddr = addr;
                (*map).is_iomem = false;
            }
            0
        }
        Err(e) => e.to_errno(),
    }
}

/// `.vunmap`: takes the mapping back and gives it to the driver's `vunmap`, or drops it.
///
/// # Safety
///
/// Called by the dma-buf core only, for a buffer exported with `T`'s ops, as the op's contract
/// in `<linux/dma-buf.h>` says.
unsafe extern "C" fn vunmap<T: Exporter>(
    dmabuf: *mut bindings::dma_buf,
    map: *mut bindings::iosys_map,
) {
    // SAFETY: The core passes one of `T`'s live dma-bufs, and the map `vmap` filled (it checks
    // that it is the one it holds).
    let (exported, addr, size) = unsafe {
        (
            exported::<T>(dmabuf),
            (*map).__bindgen_anon_1.vaddr,
            (*dmabuf).size,
        )
    };
    let Some(addr) = NonNull::new(addr) else {
        return;
    };
    // SAFETY: `dma_buf_vunmap()` holds the reservation.
    let mut held = unsafe { held(&exported.resv) };
    // The owner `vmap` kept for this mapping, if its pages have one. The proof is always ours.
    let owner = exported
        .vmap_owner
        .get_mut(&mut held)
        .map_or(None, Option::take);
    // SAFETY: `addr` is the mapping `vmap` handed over, given back once, when its last user is
    // gone; it covers the buffer's `size` bytes (checked there), and its pages are borrowed
    // from `exported.data`, which lives until `release`, or kept by `owner`, which `vmap` put
    // aside for this mapping (the only one the core holds).
    let vmap = unsafe { PageVmap::from_raw(addr, size, owner) };
    if T::HAS_VUNMAP {
        exported.data.vunmap(&mut held, vmap);
    }
}
