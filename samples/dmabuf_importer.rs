// SPDX-License-Identifier: GPL-2.0

//! `dmabuf_importer.ko`: a sample dynamic dma-buf importer written against dmabuf-lock.
//!
//! `/dev/dmabuf_importer` imports any dma-buf fd as a dynamic attachment and returns a handle.
//! Mapping happens under the buffer's reservation, and so does `invalidate_mappings`, which the
//! exporter calls with the reservation held when the buffer moves: the mapping is dropped there
//! and made again on the next map (R10). Waiting for the buffer's implicit write fences uses a
//! timeout (R3); the checksum reads the buffer through CPU access.
//!
//! The per-file table of imports is locked only to look an import up (taking a reference on it),
//! to add one or to take one out: never across a wait, so one thread's long wait does not block
//! another's map.
//!
//! Attaching, mapping under the reservation and unmapping on `invalidate_mappings` are the
//! library's `DynamicAttachment`: the mapping lives in a `ResvCell` that only code holding the
//! reservation reaches, which is what the invalidate callback, called from the exporter's task,
//! relies on.
//!
//! It also wraps ranges of the caller's own memory as userptrs (`samples/userptr.rs`), which its
//! own jobs use: an mmu notifier makes `munmap`, `mprotect` and `fork` of the range wait for
//! those jobs (R3). Userptrs share the handle table with imports.

use core::ptr;
use kernel::{
    bindings,
    device::Device,
    dma::DataDirection,
    fs::File,
    miscdevice::{MiscDevice, MiscDeviceOptions, MiscDeviceRegistration},
    new_mutex,
    prelude::*,
    sync::{aref::ARef, Arc, Mutex},
};

#[path = "../rust/dmabuf_lock/mod.rs"]
pub mod dmabuf_lock;
pub mod sys;
pub mod uapi;
#[cfg(CONFIG_MMU_NOTIFIER)]
pub mod userptr;

use dmabuf_lock::{
    context::MayBlock,
    dmabuf::{DmaBuf, DynamicAttachment},
    fence::FenceTimeline,
    resv::FenceUsage,
};
use uapi::{DliImport, DliOp, DliUserptr, DliUserptrJob};
#[cfg(CONFIG_MMU_NOTIFIER)]
use userptr::Userptr;

module! {
    type: ImporterModule,
    name: "dmabuf_importer",
    authors: ["dmabuf-lock developers"],
    description: "dmabuf-lock sample: a dynamic dma-buf importer",
    license: "GPL",
}

#[pin_data]
struct ImporterModule {
    #[pin]
    _misc: MiscDeviceRegistration<ImporterFile>,
}

impl kernel::InPlaceModule for ImporterModule {
    fn init(_module: &'static ThisModule) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            _misc <- MiscDeviceRegistration::register(MiscDeviceOptions {
                name: c"dmabuf_importer",
            }),
        })
    }
}

/// Most imports and userptrs one open file may hold.
const MAX_IMPORTS: usize = 256;

/// An open `/dev/dmabuf_importer`: its imports and userptrs, by handle (index + 1), and the
/// timeline of its userptr jobs' fences.
#[pin_data]
struct ImporterFile {
    dev: ARef<Device>,
    timeline: FenceTimeline,
    #[pin]
    imports: Mutex<KVec<Option<Object>>>,
}

/// What a handle names.
#[derive(Clone)]
enum Object {
    /// An imported dma-buf.
    Buf(Arc<Import>),
    /// A range of the caller's memory.
    #[cfg(CONFIG_MMU_NOTIFIER)]
    User(Arc<Userptr>),
}

impl Object {
    /// The imported dma-buf: `EINVAL` for a userptr.
    fn buf(&self) -> Result<&Import> {
        match self {
            Object::Buf(import) => Ok(import),
            #[cfg(CONFIG_MMU_NOTIFIER)]
            Object::User(_) => Err(EINVAL),
        }
    }

    /// The userptr: `EINVAL` for an imported dma-buf.
    #[cfg(CONFIG_MMU_NOTIFIER)]
    fn user(&self) -> Result<&Userptr> {
        match self {
            Object::User(userptr) => Ok(userptr),
            Object::Buf(_) => Err(EINVAL),
        }
    }

    /// Waits for the buffer's implicit write fences, or for the userptr's jobs (R3).
    fn wait(&self, task: &MayBlock, timeout_ms: u32) -> Result<u64> {
        match self {
            Object::Buf(import) => import.wait(task, timeout_ms),
            #[cfg(CONFIG_MMU_NOTIFIER)]
            Object::User(userptr) => userptr.wait(task, timeout_ms),
        }
    }

    fn same(&self, other: &Object) -> bool {
        match (self, other) {
            (Object::Buf(a), Object::Buf(b)) => Arc::ptr_eq(a, b),
            #[cfg(CONFIG_MMU_NOTIFIER)]
            (Object::User(a), Object::User(b)) => Arc::ptr_eq(a, b),
            #[cfg(CONFIG_MMU_NOTIFIER)]
            _ => false,
        }
    }
}

/// One imported dma-buf: the library's dynamic attachment holds the buffer, maps it under its
/// reservation, and unmaps it when the exporter moves the buffer (R10).
struct Import {
    attachment: DynamicAttachment,
}

/// The `struct device` behind a [`Device`].
fn raw_device(dev: &Device) -> *mut bindings::device {
    // `Device` is `repr(transparent)` over `Opaque<bindings::device>`.
    ptr::from_ref(dev).cast_mut().cast()
}

#[vtable]
impl MiscDevice for ImporterFile {
    type Ptr = Pin<KBox<Self>>;

    fn open(_file: &File, misc: &MiscDeviceRegistration<Self>) -> Result<Pin<KBox<Self>>> {
        let dev = ARef::from(misc.device());
        // The exporter maps its pages for this device: let it address all of memory.
        // SAFETY: `dev` is the live misc device.
        kernel::error::to_result(unsafe { sys::dl_dma_coerce_mask_64(raw_device(&dev)) })?;
        KBox::try_pin_init(
            try_pin_init!(ImporterFile {
                dev,
                timeline: FenceTimeline::with_names(c"dmabuf_importer", c"dmabuf_importer-userptr")?,
                imports <- new_mutex!(KVec::new()),
            }),
            GFP_KERNEL,
        )
    }

    fn ioctl(me: Pin<&ImporterFile>, _file: &File, cmd: u32, arg: usize) -> Result<isize> {
        let mut task = MayBlock::new()?;
        match cmd {
            uapi::DLI_IOCTL_IMPORT => me.import(&task, arg),
            uapi::DLI_IOCTL_MAP => me.op(arg, |obj, _| obj.buf()?.map(&task)),
            uapi::DLI_IOCTL_WAIT => me.op(arg, |obj, op| obj.wait(&task, op.timeout_ms)),
            uapi::DLI_IOCTL_CHECKSUM => me.op(arg, |obj, _| obj.buf()?.checksum(&task)),
            uapi::DLI_IOCTL_RELEASE => me.release(arg),
            uapi::DLI_IOCTL_USERPTR => me.userptr(&task, arg),
            uapi::DLI_IOCTL_USERPTR_JOB => me.userptr_job(&mut task, arg),
            #[cfg(CONFIG_MMU_NOTIFIER)]
            uapi::DLI_IOCTL_USERPTR_WAITED => me.op(arg, |obj, _| Ok(obj.user()?.waited())),
            #[cfg(not(CONFIG_MMU_NOTIFIER))]
            uapi::DLI_IOCTL_USERPTR_WAITED => Err(EOPNOTSUPP),
            _ => Err(ENOTTY),
        }
    }
}

impl ImporterFile {
    fn import(&self, task: &MayBlock, arg: usize) -> Result<isize> {
        let mut a: DliImport = sys::read_arg(arg, |a: &DliImport| (a.version, a.size))?;
        let attachment = DynamicAttachment::new(task, DmaBuf::from_fd(a.fd)?, self.dev.clone())?;
        let import = Object::Buf(Arc::new(Import { attachment }, GFP_KERNEL)?);
        self.add(import, |handle| {
            a.handle = handle;
            sys::write_arg(arg, &a)
        })
    }

    /// Wraps a range of the caller's memory as a userptr.
    #[cfg(CONFIG_MMU_NOTIFIER)]
    fn userptr(&self, task: &MayBlock, arg: usize) -> Result<isize> {
        let mut a: DliUserptr = sys::read_arg(arg, |a: &DliUserptr| (a.version, a.size))?;
        if a.flags != 0 {
            return Err(EINVAL);
        }
        let userptr = Object::User(Arc::new(Userptr::new(task, a.addr, a.len)?, GFP_KERNEL)?);
        self.add(userptr, |handle| {
            a.handle = handle;
            sys::write_arg(arg, &a)
        })
    }

    /// Without `CONFIG_MMU_NOTIFIER` there are no userptrs.
    #[cfg(not(CONFIG_MMU_NOTIFIER))]
    fn userptr(&self, _task: &MayBlock, arg: usize) -> Result<isize> {
        sys::read_arg(arg, |a: &DliUserptr| (a.version, a.size))?;
        Err(EOPNOTSUPP)
    }

    /// Submits a job that uses a userptr's pages.
    #[cfg(CONFIG_MMU_NOTIFIER)]
    fn userptr_job(&self, task: &mut MayBlock, arg: usize) -> Result<isize> {
        let mut a: DliUserptrJob = sys::read_arg(arg, |a: &DliUserptrJob| (a.version, a.size))?;
        let userptr = self.lookup(a.handle)?;
        // The seqno is written back once the fence is published: check first that it can be.
        sys::write_arg(arg, &a)?;
        a.seqno = userptr.user()?.job(task, &self.timeline, a.delay_ms)?;
        // As the exporter's job: submitted, it cannot be undone any more.
        let _ = sys::write_arg(arg, &a);
        Ok(0)
    }

    /// Without `CONFIG_MMU_NOTIFIER` there are no userptrs.
    #[cfg(not(CONFIG_MMU_NOTIFIER))]
    fn userptr_job(&self, _task: &mut MayBlock, arg: usize) -> Result<isize> {
        sys::read_arg(arg, |a: &DliUserptrJob| (a.version, a.size))?;
        Err(EOPNOTSUPP)
    }

    /// Puts `object` into a free slot and calls `write_back` with its handle; takes the slot
    /// back if that fails.
    fn add(&self, object: Object, write_back: impl FnOnce(u32) -> Result) -> Result<isize> {
        let mut imports = self.imports.lock();
        let slot = match imports.iter().position(Option::is_none) {
            Some(free) => free,
            None if imports.len() < MAX_IMPORTS => {
                imports.push(None, GFP_KERNEL)?;
                imports.len() - 1
            }
            None => return Err(ENOSPC),
        };
        imports[slot] = Some(object.clone());
        drop(imports);
        if let Err(e) = write_back(slot as u32 + 1) {
            // Another thread may have released the handle meanwhile and added another object
            // into the same slot: take the slot back only if it still holds this one.
            let mut imports = self.imports.lock();
            let own = imports[slot]
                .as_ref()
                .is_some_and(|held| held.same(&object));
            let undone = if own { imports[slot].take() } else { None };
            drop(imports);
            // The object is dropped, if this was its last reference, after the lock.
            drop(undone);
            return Err(e);
        }
        Ok(0)
    }

    /// Takes a reference on the object a handle names.
    fn lookup(&self, handle: u32) -> Result<Object> {
        (handle as usize)
            .checked_sub(1)
            .and_then(|i| self.imports.lock().get(i).cloned().flatten())
            .ok_or(ENOENT)
    }

    /// Runs `f` on the object an op names, and writes its result back. The table is locked only
    /// to take a reference on the object: `f` may wait.
    fn op(&self, arg: usize, f: impl FnOnce(&Object, &DliOp) -> Result<u64>) -> Result<isize> {
        let mut op: DliOp = sys::read_arg(arg, |a: &DliOp| (a.version, a.size))?;
        let import = self.lookup(op.handle)?;
        op.result = f(&import, &op)?;
        drop(import);
        sys::write_arg(arg, &op)?;
        Ok(0)
    }

    fn release(&self, arg: usize) -> Result<isize> {
        let op: DliOp = sys::read_arg(arg, |a: &DliOp| (a.version, a.size))?;
        let import = {
            let mut imports = self.imports.lock();
            (op.handle as usize)
                .checked_sub(1)
                .and_then(|i| imports.get_mut(i))
                .and_then(Option::take)
                .ok_or(ENOENT)?
        };
        drop(import);
        Ok(0)
    }
}

impl Import {
    /// Maps the attachment under the buffer's reservation (R10), unless it still is, and
    /// returns its number of DMA segments.
    fn map(&self, task: &MayBlock) -> Result<u64> {
        let mut guard = self.attachment.dmabuf().resv().lock_interruptible(task)?;
        let mapping = self
            .attachment
            .map(&mut guard, DataDirection::Bidirectional)?;
        Ok(mapping.table().iter().count() as u64)
    }

    fn wait(&self, task: &MayBlock, timeout_ms: u32) -> Result<u64> {
        let resv = self.attachment.dmabuf().resv();
        if resv.wait(task, FenceUsage::Write, true, timeout_ms)? {
            Ok(1)
        } else {
            Err(ETIMEDOUT)
        }
    }

    /// Reads the buffer through CPU access and returns its FNV-1a checksum.
    ///
    /// An importer cannot see a dma-buf's pages (with `CONFIG_DMABUF_DEBUG` the core even hides
    /// them from the mapped table), and the core's `dma_buf_vmap()` warns whenever the
    /// exporter's vmap fails, as it does when memory is short. So the buffer is mapped into the
    /// calling process, as its own `mmap` of the dma-buf would be, and read through that mapping
    /// a page at a time: every failure is an errno. The mapping is the caller's own memory, which
    /// is only ever copied from.
    fn checksum(&self, task: &MayBlock) -> Result<u64> {
        let buf = self.attachment.dmabuf();
        let _access = buf.begin_cpu_access(task, DataDirection::FromDevice)?;
        read_mapped(task, buf)
    }
}

/// Maps the whole buffer read-only into the calling process and checksums it a page at a time;
/// unmaps it.
fn read_mapped(task: &MayBlock, buf: &DmaBuf) -> Result<u64> {
    let mapping = buf.map_user_read(task)?;
    let mut reader = mapping.reader();
    let mut page = KVec::from_elem(0u8, kernel::page::PAGE_SIZE, GFP_KERNEL)?;
    let mut sum = uapi::CHECKSUM_START;
    while !reader.is_empty() {
        let n = reader.len().min(page.len());
        reader.read_slice(&mut page[..n])?;
        sum = uapi::checksum_more(sum, &page[..n]);
    }
    Ok(sum)
}
