// SPDX-License-Identifier: GPL-2.0

//! `dmabuf_exporter.ko`: a sample dma-buf exporter written against dmabuf-lock.
//!
//! `/dev/dmabuf_exporter` creates buffers of system pages and hands them out as dma-buf fds with
//! a full `dma_buf_ops` (attach and detach, pin and unpin, map and unmap with an `sg_table`,
//! `mmap`, `vmap` and `vunmap`, CPU access, release). Its job ioctl is the dma-buf submission
//! pattern: copy the arguments in (before any lock, R1), lock every buffer with the multi-object
//! locker (R6), publish one write fence on each, unlock, and signal the fence from the
//! "hardware"'s completion interrupt, an hrtimer (R4, R8). The job's fence and timers are
//! allocated before any lock, and the submission tail, from publishing the fence to handing the
//! job to the hardware, is a signalling section in which nothing allocates (R4). A watchdog
//! signals the fence of a job whose hardware never completes with `-ETIMEDOUT` (R8). Its evict ioctl moves a buffer
//! under its reservation, so dynamic importers see `invalidate_mappings` (R10). The callbacks
//! that the core calls with the reservation held never take it again (R10).
//!
//! The ioctls are in `samples/uapi/dmabuf_lock_sample.h`. Each exported buffer holds a module
//! reference, so the module cannot be unloaded while buffers are alive; so does each job until
//! its timers are done, since they run this module's code. The jobs' fences report the driver
//! name `dmabuf_exporter`.
//!
//! Buffer pages are charged to the caller's memory cgroup, and the buffers one open file has
//! created and that are still alive hold at most [`DLS_MAX_FILE_PAGES`] pages.

use core::{mem::size_of, ptr::NonNull};
use kernel::{
    bindings,
    error::{from_err_ptr, to_result},
    fs::{file::FileDescriptorReservation, File},
    miscdevice::{MiscDevice, MiscDeviceOptions, MiscDeviceRegistration},
    mm::virt::VmaNew,
    page::Page,
    prelude::*,
    sync::{
        aref::ARef,
        atomic::{Atomic, Relaxed},
        Arc,
    },
    transmute::{AsBytes, FromBytes},
    uaccess::{UserPtr, UserSlice},
};
use pin_init::stack_pin_init;

#[path = "../rust/dmabuf_lock/mod.rs"]
pub mod dmabuf_lock;
pub mod sys;
pub mod uapi;

use dmabuf_lock::{
    context::MayBlock,
    dmabuf::DmaBuf,
    fence::FenceTimeline,
    locker::{LockerFlags, ResvLocker},
    resv::FenceUsage,
    signalling::{HwCompletion, PreparedIrqJob},
};
use uapi::{
    DlsCreate, DlsJob, DLS_JOB_GRACE_MS, DLS_JOB_HANG, DLS_MAX_FILE_PAGES, DLS_MAX_JOB_BUFFERS,
    DLS_MAX_PAGES,
};

module! {
    type: ExporterModule,
    name: "dmabuf_exporter",
    authors: ["dmabuf-lock developers"],
    description: "dmabuf-lock sample: a dma-buf exporter with fenced jobs",
    license: "GPL",
}

// SAFETY: `DlsCreate` is `repr(C)` of integers with no padding: every bit pattern is valid.
unsafe impl FromBytes for DlsCreate {}
// SAFETY: As above: no padding, so every byte is initialised.
unsafe impl AsBytes for DlsCreate {}
// SAFETY: `DlsJob` is `repr(C)` of integers with no padding.
unsafe impl FromBytes for DlsJob {}
// SAFETY: As above.
unsafe impl AsBytes for DlsJob {}

#[pin_data]
struct ExporterModule {
    #[pin]
    misc: MiscDeviceRegistration<ExporterFile>,
}

impl kernel::InPlaceModule for ExporterModule {
    fn init(_module: &'static ThisModule) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            misc <- MiscDeviceRegistration::register(MiscDeviceOptions {
                name: c"dmabuf_exporter",
            }),
        })
    }
}

/// Pages held by the live buffers one file has created, at most [`DLS_MAX_FILE_PAGES`].
struct PageBudget(Atomic<u64>);

/// A charge of `pages` against a [`PageBudget`], given back on drop.
struct Charge {
    budget: Arc<PageBudget>,
    pages: u64,
}

impl Charge {
    /// Charges `pages` to `budget`: `ENOSPC` if it would go over.
    fn new(budget: &Arc<PageBudget>, pages: u64) -> Result<Self> {
        let charge = Self {
            budget: budget.clone(),
            pages,
        };
        if budget.0.fetch_add(pages, Relaxed) + pages > DLS_MAX_FILE_PAGES {
            // Dropping the charge gives the pages back.
            return Err(ENOSPC);
        }
        Ok(charge)
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.budget.0.fetch_sub(self.pages, Relaxed);
    }
}

/// An open `/dev/dmabuf_exporter`: the timeline of its jobs' fences, and what its buffers hold.
struct ExporterFile {
    timeline: FenceTimeline,
    budget: Arc<PageBudget>,
}

#[vtable]
impl MiscDevice for ExporterFile {
    type Ptr = KBox<Self>;

    fn open(_file: &File, _misc: &MiscDeviceRegistration<Self>) -> Result<KBox<Self>> {
        Ok(KBox::new(
            Self {
                timeline: FenceTimeline::with_names(c"dmabuf_exporter", c"dmabuf_exporter-jobs")?,
                budget: Arc::new(PageBudget(Atomic::new(0)), GFP_KERNEL)?,
            },
            GFP_KERNEL,
        )?)
    }

    fn ioctl(me: &ExporterFile, _file: &File, cmd: u32, arg: usize) -> Result<isize> {
        let mut task = MayBlock::new()?;
        match cmd {
            uapi::DLS_IOCTL_CREATE => me.create(arg),
            uapi::DLS_IOCTL_JOB => me.job(&mut task, arg),
            uapi::DLS_IOCTL_EVICT => evict(&task, arg),
            _ => Err(ENOTTY),
        }
    }
}

/// The backing store of one exported buffer; the dma-buf's `priv`.
struct Buffer {
    pages: KVec<Page>,
    page_ptrs: KVec<*mut bindings::page>,
    _charge: Charge,
}

impl ExporterFile {
    fn create(&self, arg: usize) -> Result<isize> {
        let mut a: DlsCreate = sys::read_arg(arg, |a: &DlsCreate| (a.version, a.size))?;
        if a.pad != 0 || a.pages == 0 || a.pages > DLS_MAX_PAGES {
            return Err(EINVAL);
        }
        let charge = Charge::new(&self.budget, a.pages)?;
        // The fd is reserved and written back first, and installed last: once installed it
        // cannot be taken back, so nothing may fail after that.
        let fd = FileDescriptorReservation::get_unused_fd_flags(bindings::O_CLOEXEC)?;
        a.fd = fd.reserved_fd() as i32;
        sys::write_arg(arg, &a)?;
        let dmabuf = export(a.pages as usize, charge)?;
        // SAFETY: `dma_buf_export` succeeded, so the dma-buf's file is set, and it holds the
        // reference `dma_buf_export` returned: the reference is handed over to the fd table here.
        let file = unsafe { ARef::from_raw(NonNull::new_unchecked((*dmabuf).file.cast())) };
        fd.fd_install(file);
        Ok(0)
    }
}

/// Allocates `count` zeroed pages, charged to the caller's memory cgroup, and exports them as a
/// new dma-buf; returns its reference.
fn export(count: usize, charge: Charge) -> Result<*mut bindings::dma_buf> {
    let mut pages = KVec::with_capacity(count, GFP_KERNEL_ACCOUNT)?;
    let mut page_ptrs = KVec::with_capacity(count, GFP_KERNEL_ACCOUNT)?;
    for _ in 0..count {
        let page = Page::alloc_page(GFP_KERNEL_ACCOUNT | __GFP_ZERO)?;
        page_ptrs.push(page.as_ptr(), GFP_KERNEL_ACCOUNT)?;
        pages.push(page, GFP_KERNEL_ACCOUNT)?;
    }
    let buffer = KBox::into_raw(KBox::new(
        Buffer {
            pages,
            page_ptrs,
            _charge: charge,
        },
        GFP_KERNEL_ACCOUNT,
    )?);
    let info = bindings::dma_buf_export_info {
        exp_name: c"dmabuf_exporter".as_char_ptr(),
        owner: kernel::module::this_module::<ExporterModule>().as_ptr(),
        ops: &EXPORTER_OPS,
        size: count * kernel::page::PAGE_SIZE,
        flags: bindings::O_RDWR as i32,
        resv: core::ptr::null_mut(),
        priv_: buffer.cast(),
    };
    // SAFETY: `info` is complete; on success the dma-buf owns `buffer` and frees it in `release`.
    from_err_ptr(unsafe { bindings::dma_buf_export(&info) }).inspect_err(|_| {
        // SAFETY: The export failed, so `buffer` is still ours.
        drop(unsafe { KBox::from_raw(buffer) });
    })
}

/// Takes a reference on the dma-buf behind `fd` if this exporter made it: `EINVAL` for another
/// exporter's dma-buf or a file that is not one, `EBADF` for no file.
fn own_buffer(fd: i32) -> Result<ARef<DmaBuf>> {
    let buf = DmaBuf::from_fd(fd)?;
    if !buf.is_exported_with(&EXPORTER_OPS) {
        return Err(EINVAL);
    }
    Ok(buf)
}

impl ExporterFile {
    fn job(&self, task: &mut MayBlock, arg: usize) -> Result<isize> {
        let mut a: DlsJob = sys::read_arg(arg, |a: &DlsJob| (a.version, a.size))?;
        let delay_ms = a.delay_ms & !DLS_JOB_HANG;
        if a.count == 0 || a.count > DLS_MAX_JOB_BUFFERS || delay_ms > 10_000 {
            return Err(EINVAL);
        }
        // What the "hardware" will do: raise its completion interrupt after the delay, or hang.
        let completion = if a.delay_ms & DLS_JOB_HANG != 0 {
            HwCompletion::Never
        } else {
            HwCompletion::After(delay_ms)
        };
        // User memory is read before any reservation is taken (R1).
        let count = a.count as usize;
        let mut raw = KVec::<u8>::with_capacity(count * size_of::<i32>(), GFP_KERNEL)?;
        UserSlice::new(
            UserPtr::from_addr(a.fds_ptr as usize),
            count * size_of::<i32>(),
        )
        .reader()
        .read_all(&mut raw, GFP_KERNEL)?;
        let mut buffers = KVec::with_capacity(count, GFP_KERNEL)?;
        for fd in raw.chunks_exact(size_of::<i32>()) {
            let fd = i32::from_ne_bytes([fd[0], fd[1], fd[2], fd[3]]);
            buffers.push(own_buffer(fd)?, GFP_KERNEL)?;
        }
        // The seqno is written back once the fence is published, when the job can no longer be
        // taken back: check now, before any lock (R1), that the argument can be written.
        sys::write_arg(arg, &a)?;
        // Everything the job needs is allocated now, before its fence exists (R4): the fence's
        // storage, the hrtimer that stands in for the hardware's completion interrupt, whose
        // handler signals the fence, and the watchdog that times the job out (R8).
        let timeout_ms = delay_ms + DLS_JOB_GRACE_MS;
        let job = PreparedIrqJob::new(task, &self.timeline, timeout_ms, |fence, _irq| {
            fence.signal(Ok(()))
        })?;
        // The locker lives in this block only: its acquire context counts as a reservation lock
        // for lockdep until it is finalised, so it must be gone before user memory is touched
        // again below (R1).
        a.seqno = {
            let flags = LockerFlags {
                interruptible: true,
                fence_slots: 1,
                ..Default::default()
            };
            stack_pin_init!(let locker = ResvLocker::new(flags));
            locker
                .as_mut()
                .lock_iter(task, buffers.iter().map(|buf| buf.resv()))?;
            // The submission tail: from publishing the fence until the job is handed to the
            // hardware, this is a fence-signalling critical section (R4, R5). Nothing in it
            // allocates or blocks, and lockdep would report it if something did. Arming starts
            // the watchdog.
            let section = task.signalling_section();
            let job = job.arm(&section);
            for mut held in locker.as_mut().locked_mut() {
                // On an error the job is dropped unsubmitted, which cancels its fence (R8).
                held.add_fence(job.fence(), FenceUsage::Write)?;
            }
            let seqno = job.fence().seqno();
            // Timers per job: no job's completion waits behind another's delay (R8).
            job.submit(completion);
            drop(section);
            seqno
        };
        // The job is submitted and cannot fail any more; the argument was writable above, so
        // this write fails only if another thread unmapped it since, which does not undo the job.
        let _ = sys::write_arg(arg, &a);
        Ok(0)
    }
}

fn evict(task: &MayBlock, arg: usize) -> Result<isize> {
    let a: DlsCreate = sys::read_arg(arg, |a: &DlsCreate| (a.version, a.size))?;
    let buffer = own_buffer(a.fd)?;
    let mut guard = buffer.resv().lock_interruptible(task)?;
    // Importers' `invalidate_mappings` run now, with the reservation held (R10).
    buffer.invalidate_mappings(&mut guard)?;
    Ok(0)
}

/// The `Buffer` of the dma-buf behind an attachment or a dma-buf pointer.
///
/// # Safety
///
/// `dmabuf` is a live dma-buf exported by this module.
unsafe fn buffer<'a>(dmabuf: *mut bindings::dma_buf) -> &'a Buffer {
    // SAFETY: The caller guarantees the dma-buf is ours, so `priv` is the `Buffer` made in
    // `create`, freed only in `release`.
    unsafe { &*(*dmabuf).priv_.cast::<Buffer>() }
}

extern "C" fn attach(
    _dmabuf: *mut bindings::dma_buf,
    _attach: *mut bindings::dma_buf_attachment,
) -> i32 {
    0
}

extern "C" fn detach(_dmabuf: *mut bindings::dma_buf, _attach: *mut bindings::dma_buf_attachment) {}

/// The pages never move on their own, so pinning has nothing to do; providing it makes the
/// exporter dynamic, so the core maps with the reservation held (R10).
extern "C" fn pin(_attach: *mut bindings::dma_buf_attachment) -> i32 {
    0
}

extern "C" fn unpin(_attach: *mut bindings::dma_buf_attachment) {}

/// Called with the reservation held: it must not lock it again (R10), and does not.
extern "C" fn map_dma_buf(
    attach: *mut bindings::dma_buf_attachment,
    dir: bindings::dma_data_direction,
) -> *mut bindings::sg_table {
    // SAFETY: The core passes a live attachment to one of our dma-bufs.
    let (buf, dev) = unsafe { (buffer((*attach).dmabuf), (*attach).dev) };
    let result = (|| -> Result<*mut bindings::sg_table> {
        // SAFETY: All-zero is the state `sg_alloc_table*` expects to fill.
        let empty = unsafe { core::mem::zeroed::<bindings::sg_table>() };
        let sgt = KBox::into_raw(KBox::new(empty, GFP_KERNEL)?);
        let count = buf.page_ptrs.len() as u32;
        // SAFETY: `sgt` is a zeroed table; `page_ptrs` holds `count` pages we own.
        let ret = unsafe {
            sys::dl_sg_alloc_table_from_pages(sgt, buf.page_ptrs.as_ptr().cast_mut(), count)
        };
        let ret = to_result(ret).and_then(|()| {
            // SAFETY: `sgt` was just filled; `dev` is the importer's device.
            to_result(unsafe { bindings::dma_map_sgtable(dev, sgt, dir, 0) }).inspect_err(|_| {
                // SAFETY: Frees the table filled above.
                unsafe { bindings::sg_free_table(sgt) }
            })
        });
        if let Err(e) = ret {
            // SAFETY: `sgt` came from `KBox::into_raw` above and holds no entries any more.
            drop(unsafe { KBox::from_raw(sgt) });
            return Err(e);
        }
        Ok(sgt)
    })();
    result.unwrap_or_else(|e| e.to_ptr())
}

extern "C" fn unmap_dma_buf(
    attach: *mut bindings::dma_buf_attachment,
    sgt: *mut bindings::sg_table,
    dir: bindings::dma_data_direction,
) {
    // SAFETY: `sgt` is a table `map_dma_buf` made for this attachment's device.
    unsafe {
        sys::dl_dma_unmap_sgtable((*attach).dev, sgt, dir);
        bindings::sg_free_table(sgt);
        drop(KBox::from_raw(sgt));
    }
}

extern "C" fn release(dmabuf: *mut bindings::dma_buf) {
    // SAFETY: The last reference is gone; `priv` is the `Buffer` boxed in `create`.
    drop(unsafe { KBox::from_raw((*dmabuf).priv_.cast::<Buffer>()) });
}

/// The pages are ordinary cached system memory: CPU access needs no maintenance.
extern "C" fn cpu_access(
    _dmabuf: *mut bindings::dma_buf,
    _dir: bindings::dma_data_direction,
) -> i32 {
    0
}

extern "C" fn mmap(dmabuf: *mut bindings::dma_buf, vma: *mut bindings::vm_area_struct) -> i32 {
    // SAFETY: The core passes one of our live dma-bufs and a vma being set up for it.
    let (buf, vma, pgoff) = unsafe { (buffer(dmabuf), VmaNew::from_raw(vma), (*vma).vm_pgoff) };
    let pages = (vma.end() - vma.start()) / kernel::page::PAGE_SIZE;
    if pgoff
        .checked_add(pages)
        .is_none_or(|end| end > buf.pages.len())
    {
        return EINVAL.to_errno();
    }
    let mixed = vma.set_mixedmap();
    for (i, page) in buf.pages[pgoff..pgoff + pages].iter().enumerate() {
        if let Err(e) = mixed.vm_insert_page(vma.start() + i * kernel::page::PAGE_SIZE, page) {
            return e.to_errno();
        }
    }
    0
}

extern "C" fn vmap(dmabuf: *mut bindings::dma_buf, map: *mut bindings::iosys_map) -> i32 {
    // SAFETY: The core passes one of our live dma-bufs.
    let buf = unsafe { buffer(dmabuf) };
    // SAFETY: `page_ptrs` holds our pages; the mapping is undone in `vunmap`.
    let vaddr = unsafe {
        sys::dl_vmap_pages(
            buf.page_ptrs.as_ptr().cast_mut(),
            buf.page_ptrs.len() as u32,
        )
    };
    if vaddr.is_null() {
        return ENOMEM.to_errno();
    }
    // SAFETY: `map` is the core's map to fill: a system-memory address.
    unsafe {
        (*map).__bindgen_anon_1.vaddr = vaddr;
        (*map).is_iomem = false;
    }
    0
}

extern "C" fn vunmap(_dmabuf: *mut bindings::dma_buf, map: *mut bindings::iosys_map) {
    // SAFETY: `map` holds the address `vmap` returned.
    unsafe { sys::dl_vunmap((*map).__bindgen_anon_1.vaddr) };
}

static EXPORTER_OPS: bindings::dma_buf_ops = bindings::dma_buf_ops {
    attach: Some(attach),
    detach: Some(detach),
    pin: Some(pin),
    unpin: Some(unpin),
    map_dma_buf: Some(map_dma_buf),
    unmap_dma_buf: Some(unmap_dma_buf),
    release: Some(release),
    begin_cpu_access: Some(cpu_access),
    end_cpu_access: Some(cpu_access),
    mmap: Some(mmap),
    vmap: Some(vmap),
    vunmap: Some(vunmap),
};
