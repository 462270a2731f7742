// SPDX-License-Identifier: GPL-2.0

//! `dmabuf_exporter.ko`: a sample dma-buf exporter written against dmabuf-lock.
//!
//! `/dev/dmabuf_exporter` creates buffers of system pages and hands them out as dma-buf fds. The
//! buffer type implements the library's `Exporter` (pin and unpin, map and unmap with an
//! `sg_table`, CPU page faults on a mapped buffer, `vmap` and `vunmap`; dropping it is the
//! release), from which the library makes the `dma_buf_ops` and the mappings' fault handler. Its job ioctl is the dma-buf submission
//! pattern: copy the arguments in (before any lock, R1), lock every buffer with the multi-object
//! locker (R6), publish one write fence on each, unlock, and signal the fence from the
//! "hardware"'s completion interrupt, an hrtimer (R4, R8). The job's fence and timers are
//! allocated before any lock, and the submission tail, from publishing the fence to handing the
//! job to the hardware, is a signalling section in which nothing allocates (R4). A watchdog
//! signals the fence of a job whose hardware never completes with `-ETIMEDOUT` (R8). Its evict
//! ioctl moves a buffer under its reservation, so dynamic importers see `invalidate_mappings`
//! (R10) and processes that map it fault again on their next access, unless an importer has pinned it (`EBUSY`). The callbacks that the core calls with the
//! reservation held get the library's proof that it is held, which reaches the pin count guarded
//! by it and cannot lock it again (R10).
//!
//! The ioctls are in `samples/uapi/dmabuf_lock_sample.h`. Each exported buffer holds a module
//! reference, so the module cannot be unloaded while buffers are alive; so does each job until
//! its timers are done, since they run this module's code. The jobs' fences report the driver
//! name `dmabuf_exporter`.
//!
//! Buffer pages are charged to the caller's memory cgroup, and the buffers one open file has
//! created and that are still alive hold at most [`DLS_MAX_FILE_PAGES`] pages.

use core::mem::size_of;
use kernel::{
    bindings,
    dma::DataDirection,
    fs::{file::FileDescriptorReservation, File},
    miscdevice::{MiscDevice, MiscDeviceOptions, MiscDeviceRegistration},
    page::{Page, PAGE_SIZE},
    prelude::*,
    sync::{
        aref::ARef,
        atomic::{Atomic, Relaxed},
        Arc,
    },
    uaccess::{UserPtr, UserSlice},
};
use pin_init::stack_pin_init;

#[path = "../rust/dmabuf_lock/mod.rs"]
pub mod dmabuf_lock;
pub mod sys;
pub mod uapi;

use dmabuf_lock::{
    context::MayBlock,
    dmabuf::{DmaBuf, ExportOps, ExportedAttachment, ExportedBuf, Exporter, PageMapping, PageVmap},
    fence::FenceTimeline,
    locker::{LockerFlags, ResvLocker},
    resv::{FenceUsage, ResvCell, ResvHeld},
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
            uapi::DLS_IOCTL_CREATE => me.create(&task, arg),
            uapi::DLS_IOCTL_JOB => me.job(&mut task, arg),
            uapi::DLS_IOCTL_EVICT => evict(&task, arg),
            _ => Err(ENOTTY),
        }
    }
}

/// The backing store of one exported buffer: the dma-buf owns it, and drops it when the last
/// reference to the buffer is gone.
struct Buffer {
    pages: KVec<Page>,
    /// Pins of importers, under the buffer's reservation: a pinned buffer may not move.
    pins: ResvCell<u32>,
    _charge: Charge,
}

impl ExporterFile {
    fn create(&self, task: &MayBlock, arg: usize) -> Result<isize> {
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
        export(task, a.pages as usize, charge)?.install(fd);
        Ok(0)
    }
}

/// Allocates `count` zeroed pages, charged to the caller's memory cgroup, and exports them as a
/// new dma-buf.
fn export(task: &MayBlock, count: usize, charge: Charge) -> Result<ExportedBuf<Buffer>> {
    let mut pages = KVec::with_capacity(count, GFP_KERNEL_ACCOUNT)?;
    for _ in 0..count {
        pages.push(
            Page::alloc_page(GFP_KERNEL_ACCOUNT | __GFP_ZERO)?,
            GFP_KERNEL_ACCOUNT,
        )?;
    }
    ExportedBuf::new(task, count * PAGE_SIZE, |resv| {
        Ok(Buffer {
            pages,
            pins: ResvCell::new(resv, 0),
            _charge: charge,
        })
    })
}

static BUFFER_OPS: ExportOps<Buffer> = ExportOps::new();

#[vtable]
impl Exporter for Buffer {
    const OPS: &'static ExportOps<Self> = &BUFFER_OPS;

    /// Pinning makes the exporter dynamic, so the core maps with the reservation held (R10).
    /// The pages never move on their own; a pin only keeps `DLS_IOCTL_EVICT` from moving them.
    fn pin(&self, held: &mut ResvHeld<'_>, _attachment: &ExportedAttachment) -> Result {
        *self.pins.get_mut(held)? += 1;
        Ok(())
    }

    fn unpin(&self, held: &mut ResvHeld<'_>, _attachment: &ExportedAttachment) {
        if let Ok(pins) = self.pins.get_mut(held) {
            *pins -= 1;
        }
    }

    /// Called with the reservation held: `held` proves it, and nothing here can lock it again.
    fn map<'a>(
        &'a self,
        _held: &mut ResvHeld<'_>,
        attachment: &ExportedAttachment,
        dir: DataDirection,
    ) -> Result<PageMapping<'a>> {
        PageMapping::new(attachment.device(), &self.pages, dir)
    }

    /// A CPU access to a page of a mapped buffer that is not mapped yet: `mmap()` maps nothing,
    /// and each page comes here the first time it is touched. The library has locked the
    /// reservation under the process's `mmap_lock` (the direction R1 allows) and waited for
    /// the buffer's moves; it checked `pgoff` against the buffer's size too.
    fn fault<'a>(&'a self, _held: &'a mut ResvHeld<'_>, pgoff: usize) -> Result<&'a Page> {
        self.pages.get(pgoff).ok_or(EINVAL)
    }

    fn vmap<'a>(&'a self, _held: &mut ResvHeld<'_>) -> Result<PageVmap<'a>> {
        PageVmap::new(&self.pages)
    }
}

/// Takes a reference on the dma-buf behind `fd` if this exporter made it: `EINVAL` for another
/// exporter's dma-buf or a file that is not one, `EBADF` for no file.
fn own_buffer(fd: i32) -> Result<ARef<DmaBuf>> {
    Ok(ExportedBuf::<Buffer>::from_dmabuf(DmaBuf::from_fd(fd)?)?.into_dmabuf())
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
        // handler returns the job's outcome (the library signals the fence with it), and the
        // watchdog that times the job out (R8).
        let timeout_ms = delay_ms + DLS_JOB_GRACE_MS;
        let job = PreparedIrqJob::new(task, &self.timeline, timeout_ms, |_fence, _irq| Ok(()))?;
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
    let buffer = ExportedBuf::<Buffer>::from_dmabuf(DmaBuf::from_fd(a.fd)?)?;
    let mut guard = buffer.dmabuf().resv().lock_interruptible(task)?;
    // A pinned buffer must stay where it is.
    if *buffer.data().pins.get(&guard)? > 0 {
        return Err(EBUSY);
    }
    // Importers' `invalidate_mappings` run now, with the reservation held (R10), and the
    // mappings of processes are zapped, so their next access faults (see `Buffer::fault`).
    buffer.dmabuf().invalidate_mappings(&mut guard)?;
    buffer.dmabuf().zap_user_mappings(&mut guard)?;
    Ok(0)
}
